"""Settings, read once from the environment (``HERALD_*``) and overridable by CLI flags."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob Herald has, each with a default that serves one machine."""

    model_config = SettingsConfigDict(env_prefix="HERALD_", extra="ignore")

    database_url: str = "sqlite:///herald.db"
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)

    retention_days: float = Field(default=30, gt=0)
    purge_interval_seconds: float = Field(default=600, gt=0)

    jwt_secret: str | None = Field(default=None, repr=False)
    jwt_ttl_seconds: int = Field(default=3600, gt=0)

    max_body_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    max_batch_events: int = Field(default=1000, gt=0)
    max_future_skew_seconds: float = Field(default=5, ge=0)

    sqlite_synchronous: str = "FULL"
    node_id: int | None = Field(default=None, ge=0, le=1023)
    log_level: str = "info"

    @field_validator("sqlite_synchronous")
    @classmethod
    def _known_sync_mode(cls, value: str) -> str:
        mode = value.upper()
        if mode not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError("must be one of OFF, NORMAL, FULL, EXTRA")
        return mode
