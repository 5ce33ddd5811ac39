"""Settings, read once from the environment (``HERALD_*``) and overridable by CLI flags."""

from __future__ import annotations

import ipaddress
import os
from typing import TYPE_CHECKING, Any, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from herald.retention import MAX_RETENTION_DAYS

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo
    from pydantic_core import ErrorDetails


ENV_PREFIX = "HERALD_"


class Settings(BaseModel):
    """Every knob Herald has, each with a default that serves one machine: ``HERALD_<NAME>``
    (any case) from the environment, values given to the constructor over it."""

    model_config = ConfigDict(extra="ignore", validate_default=True)

    database_url: str = "sqlite:///herald.db"
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)

    retention_days: float = Field(default=30, gt=0, le=MAX_RETENTION_DAYS)  # per org: its own
    purge_interval_seconds: float = Field(default=600, gt=0)

    jwt_secret: str | None = Field(default=None, repr=False)
    jwt_ttl_seconds: int = Field(default=3600, gt=0)

    max_body_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    max_batch_events: int = Field(default=1000, gt=0)
    max_future_skew_seconds: float = Field(default=5, ge=0, le=86_400)  # partitions: days ahead
    rate_limit_per_second: float = Field(default=500, ge=0)  # per token; 0 turns it off
    rate_limit_burst: int = Field(default=1000, ge=1)
    # Proxies whose X-Forwarded-For / -Proto are believed (IPs or CIDRs, comma-separated);
    # empty: none, the client is the connecting address (rate limits key on it).
    trusted_proxies: str = ""
    query_time_limit_seconds: float = Field(default=10, gt=0, le=3600)  # a tenant's query
    queries_per_organisation: int = Field(default=4, ge=1)  # a tenant's queries at once
    # Each organisation's event budget (its own with herald org limits): events per second
    # (0 turns the budget off), the burst its bucket holds, and body bytes per UTC day.
    event_budget_per_second: float = Field(default=1000, ge=0)
    event_budget_burst: int = Field(default=3000, ge=1)  # a 1NCE batch holds up to 3000
    event_budget_bytes_per_day: int = Field(default=4 * 1024**3, ge=1)
    metrics_token: str | None = Field(default=None, repr=False)  # a scraper's bearer token
    metrics_public: bool = False  # /metrics without credentials (a private network's scrape)

    delivery_enabled: bool = True  # serve runs the delivery worker in-process
    delivery_retry_schedule: str = "5,30,120,600,1800,3600,10800,21600,43200,86400"
    delivery_timeout_seconds: float = Field(default=10, gt=0)
    delivery_lease_seconds: float = Field(default=30, gt=0)
    delivery_poll_seconds: float = Field(default=0.05, gt=0)
    delivery_max_connections: int = Field(default=200, ge=1)  # one pool for every handler
    delivery_connections_per_organisation: int = Field(default=20, ge=1)  # requests at once
    delivery_drain_seconds: float = Field(default=10, ge=0)  # on stop, for requests out
    handler_retention_days: float = Field(default=3, gt=0)
    max_handlers_per_organisation: int = Field(default=100, ge=1)
    worker_host: str = "127.0.0.1"  # where herald worker serves /health, /ready, /metrics
    worker_port: int = Field(default=9464, ge=1, le=65535)
    device_state_poll_seconds: float = Field(default=0.2, gt=0)  # projector's look at the log
    device_state_enabled: bool = True  # false: this process keeps no device state
    device_state_lease_seconds: float = Field(default=5, ge=0.5)  # a dead owner's failover
    rules_enabled: bool = True  # false: this process evaluates no rules (another does)
    rules_poll_seconds: float = Field(default=0.2, gt=0)  # the evaluator's look at the log
    max_rules_per_organisation: int = Field(default=100, ge=1)
    max_groups_per_rule: int = Field(default=10_000, ge=1)  # endpoints, SIMs... one rule tracks
    allow_private_targets: bool = False
    secret_key: str | None = Field(default=None, repr=False)  # seals handler secrets
    secret_key_file: str | None = None  # else: beside the database (or ./herald.secret-key)

    sqlite_synchronous: str = "FULL"
    node_id: int | None = Field(default=None, ge=0, le=1023)
    log_level: str = "info"
    audit_events: bool = True  # record security actions as events of the tenant

    stream_heartbeat_seconds: float = Field(default=15, gt=0)
    stream_buffer_events: int = Field(default=1000, ge=1)
    stream_max_per_token: int = Field(default=10, ge=1)  # open live streams
    stream_max_per_organisation: int = Field(default=50, ge=1)
    stream_recheck_seconds: float = Field(default=5, gt=0)  # revoked/expired credentials end

    ingest_max_batch_records: int = Field(default=3000, gt=0)  # a 1NCE request holds up to 3000
    # The ingest quarantine: a record above record_bytes keeps only its first bytes (with its
    # size and sha256); each organisation's holds at most records / bytes; one page of
    # GET /ingest/rejected, or one bulk retry, reads at most read_bytes of records.
    quarantine_record_bytes: int = Field(default=64 * 1024, ge=1024, le=64 * 1024**2)
    quarantine_records: int = Field(default=100_000, ge=1)
    quarantine_bytes: int = Field(default=128 * 1024**2, ge=1024)
    quarantine_read_bytes: int = Field(default=4 * 1024**2, ge=1024)
    demo: bool = False  # seed a demo fleet on an empty database; herald serve turns it on
    demo_devices: int = Field(default=300, ge=1)
    demo_rate: float = Field(default=2.0, gt=0)  # live demo events per second

    @model_validator(mode="before")
    @classmethod
    def _environment(cls, given: Any) -> Any:
        # What pydantic-settings' BaseSettings did for these plain fields, without importing
        # it (~45 ms, a sixth of a CLI command's start): tests/test_config.py.
        if not isinstance(given, dict):
            return given
        prefix = ENV_PREFIX.lower()
        found = {}
        for key, value in os.environ.items():
            name = key.lower().removeprefix(prefix)
            if name != key.lower() and name in cls.model_fields:
                found[name] = value
        return {**found, **given}

    @field_validator("delivery_retry_schedule")
    @classmethod
    def _retry_schedule(cls, value: str) -> str:
        try:
            delays = [float(part) for part in value.split(",")]
        except ValueError:
            raise ValueError("must be comma-separated seconds, e.g. 5,30,120") from None
        if not delays or any(delay < 0 for delay in delays):
            raise ValueError("must be comma-separated non-negative seconds")
        return value

    @property
    def retry_delays(self) -> tuple[float, ...]:
        """The retry schedule in seconds."""
        return tuple(float(part) for part in self.delivery_retry_schedule.split(","))

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_addresses(cls, value: str) -> str:
        parts = []
        for part in (part.strip() for part in value.split(",")):
            try:  # normalised: uvicorn takes "10.0.0.1/8" for a name, not a network
                if "/" in part:
                    parts.append(str(ipaddress.ip_network(part, strict=False)))
                elif part:
                    parts.append(str(ipaddress.ip_address(part)))
            except ValueError:
                raise ValueError(
                    f"{part!r} is not an IP address or network, e.g. 10.0.0.5,10.1.0.0/16"
                ) from None
        return ",".join(parts)

    @property
    def trusted_proxy_list(self) -> list[str]:
        """The proxies whose forwarding headers are believed (none by default)."""
        return [part for part in self.trusted_proxies.split(",") if part]

    @field_validator("sqlite_synchronous")
    @classmethod
    def _known_sync_mode(cls, value: str) -> str:
        mode = value.upper()
        if mode not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError("must be one of OFF, NORMAL, FULL, EXTRA")
        return mode


class SettingsError(ValueError):
    """``HERALD_*`` values that are not valid: ``problems`` holds one line for each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def load_settings() -> Settings:
    """The settings from the environment; a ``SettingsError`` names each bad variable, what
    is wrong with its value and what is expected (a message for a person, not a traceback)."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError([_problem(error) for error in exc.errors()]) from None


_KINDS = {bool: "true or false", int: "a whole number", float: "a number"}
_BOUNDS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))


def _problem(error: ErrorDetails) -> str:
    """One line for one validation error: ``HERALD_PORT='x': should be ...; expected ...``."""
    name = str(error["loc"][0]) if error["loc"] else ""
    reason = error["msg"].removeprefix("Value error, ")
    if reason.startswith("Input should"):
        reason = reason.replace("Input should", "should", 1)
    field = Settings.model_fields.get(name)
    if field is None:
        return f"settings: {reason}"
    variable = f"{ENV_PREFIX}{name}".upper()
    value = error.get("input")
    shown = "(value hidden)" if not field.repr else repr(str(value)[:80])
    expected = _expected(field)
    return f"{variable}={shown}: {reason}" + (f"; expected {expected}" if expected else "")


def _expected(field: FieldInfo) -> str | None:
    """What a number or switch setting takes, with its bounds and default (None for text:
    its validator's message says what it takes)."""
    types = (field.annotation, *get_args(field.annotation))
    kind = next((_KINDS[t] for t in types if isinstance(t, type) and t in _KINDS), None)
    if kind is None:
        return None
    bounds = [
        f"{symbol} {getattr(item, attr)}"
        for item in field.metadata
        for attr, symbol in _BOUNDS
        if hasattr(item, attr)
    ]
    default = field.default
    shown = "unset" if default is None else str(default)
    if kind == _KINDS[bool]:
        shown = shown.lower()
    return f"{kind}{' ' + ', '.join(bounds) if bounds else ''} (default {shown})"
