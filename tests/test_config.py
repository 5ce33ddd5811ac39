"""The settings read ``HERALD_*`` as pydantic-settings' ``BaseSettings`` did (without
importing it: a sixth of every command's start)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from pydantic import create_model
from pydantic_settings import BaseSettings, SettingsConfigDict

from herald.config import Settings, SettingsError, load_settings

# Values every validator keeps as they are, one for each kind of setting.
ENVIRONMENT = {
    "HERALD_DATABASE_URL": "sqlite:////tmp/elsewhere.db",
    "herald_port": "9090",  # any case, as BaseSettings (case_sensitive=False) took it
    "Herald_Retention_Days": "7.5",
    "HERALD_METRICS_PUBLIC": "yes",
    "HERALD_JWT_SECRET": "",  # an empty value is an empty string, not unset
    "HERALD_NODE_ID": "12",
    "HERALD_SQLITE_SYNCHRONOUS": "NORMAL",
    "HERALD_TRUSTED_PROXIES": "10.0.0.5,10.1.0.0/16",
    "HERALD_URL": "http://example.invalid",  # the CLI's, not a setting: ignored
    "HERALD_MODEL_CONFIG": "x",
}


class _Declared(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HERALD_", extra="ignore")


def _reference() -> type[BaseSettings]:
    """A ``BaseSettings`` with Settings' fields, as Settings was declared before."""
    fields: dict[str, Any] = {
        name: (field.annotation, field) for name, field in Settings.model_fields.items()
    }
    return create_model("Reference", __base__=_Declared, **fields)


def _clear(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.upper().startswith("HERALD_"):
            monkeypatch.delenv(key)


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear(monkeypatch)
    for key, value in ENVIRONMENT.items():
        monkeypatch.setenv(key, value)


@pytest.mark.usefixtures("environment")
def test_the_environment_is_read_as_base_settings_read_it() -> None:
    settings = Settings()
    assert settings.model_dump() == _reference()().model_dump()
    assert settings.port == 9090 and settings.retention_days == 7.5
    assert settings.metrics_public is True and settings.jwt_secret == ""
    assert settings.node_id == 12 and settings.database_url.endswith("elsewhere.db")


@pytest.mark.usefixtures("environment")
def test_given_values_win_over_the_environment() -> None:
    settings = Settings(port=1234, database_url="sqlite:///given.db")
    assert (settings.port, settings.database_url) == (1234, "sqlite:///given.db")
    assert settings.retention_days == 7.5  # the rest still from the environment


def test_defaults_are_validated_and_unset_variables_keep_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _clear(monkeypatch)
    settings = Settings()
    assert settings.port == 8080 and settings.sqlite_synchronous == "FULL"
    monkeypatch.setenv("HERALD_SQLITE_SYNCHRONOUS", "normal")
    assert Settings().sqlite_synchronous == "NORMAL"  # validators apply to the environment's


def test_a_bad_variable_is_named_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear(monkeypatch)
    monkeypatch.setenv("herald_port", "eighty")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert raised.value.problems == [
        "HERALD_PORT='eighty': should be a valid integer, unable to parse string as an "
        "integer; expected a whole number >= 1, <= 65535 (default 8080)"
    ]
