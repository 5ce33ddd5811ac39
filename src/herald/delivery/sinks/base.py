"""What every sink shares: the protocol the worker sends through, each type's settings
(validated when a handler is written), and the connection-keeping base of the brokers.

A sink is opened per handler and worker and kept while the handler's settings stay the
same. A broker sink connects on its first send, keeps the connection, and drops it on any
failure; the next attempt (after the worker's retry backoff) connects again. A send is
acknowledged only when the broker acknowledged every message of it, in order.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson

from herald.delivery.formats import Item, encode
from herald.delivery.headers import (
    HeaderError,
    check_headers,
    check_timeout,
    check_webhook_credentials,
)
from herald.delivery.sinks import templates
from herald.delivery.sinks.tls import (
    MAX_PEM_CHARS,
    PemError,
    check_certificates,
    check_key,
    client_context,
)
from herald.delivery.targets import TargetRefused, resolve
from herald.delivery.webhook import SendResult
from herald.handlers.types import Handler

log = logging.getLogger("herald.delivery")
TYPES = ("webhook", "mqtt", "nats", "amqp", "s3")
MAX_SETTING_CHARS = 255
MAX_CREDENTIAL_CHARS = 4096
OPTIONAL = object()
"""A setting's default: none (the setting is left out; "" removes one set before)."""
PEMS = frozenset({"ca_cert", "client_cert", "client_key"})  # longer: MAX_PEM_CHARS


class SettingsError(ValueError):
    """A handler setting that cannot be used: ``field`` (as the API names it) and why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Kind:
    """What one handler type takes: URL schemes (with default ports), settings with their
    defaults (``None``: required, ``OPTIONAL``: none), the credential fields and a template
    check per setting."""

    schemes: Mapping[str, int]
    settings: Mapping[str, object]
    credentials: tuple[str, ...]
    templates: Mapping[str, Callable[[str], None]] = field(default_factory=dict)


KINDS: dict[str, Kind] = {
    "webhook": Kind(
        {"http": 80, "https": 443},
        {"headers": OPTIONAL, "timeout_seconds": OPTIONAL},
        ("token", "username", "password"),
    ),
    "mqtt": Kind(
        {"mqtt": 1883, "mqtts": 8883},
        {"topic": None, "tls_verify": True, "ca_cert": OPTIONAL},
        ("username", "password", "client_cert", "client_key"),
        {"topic": templates.check_mqtt_topic},
    ),
    "nats": Kind(
        {"nats": 4222, "tls": 4222},
        {"subject": None, "tls_verify": True, "ca_cert": OPTIONAL},
        ("username", "password", "token", "client_cert", "client_key"),
        {"subject": templates.check_nats_subject},
    ),
    "amqp": Kind(
        {"amqp": 5672, "amqps": 5671},
        {"exchange": None, "routing_key": None, "tls_verify": True, "ca_cert": OPTIONAL},
        ("username", "password", "client_cert", "client_key"),
        {"routing_key": templates.check_routing_key},
    ),
    "s3": Kind(
        {"http": 80, "https": 443},
        {"bucket": None, "region": "us-east-1", "tls_verify": True},
        ("access_key_id", "secret_access_key"),
    ),
}
TLS_SCHEMES = frozenset({"https", "mqtts", "tls", "amqps"})


def check_url(kind: str, url: str) -> tuple[str, int]:
    """The host and port of a sink's URL; SettingsError("url", ...) if its form is wrong."""
    schemes = KINDS[kind].schemes
    if any(char == " " or not char.isprintable() for char in url):
        raise SettingsError("url", "must not hold spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise SettingsError("url", f"malformed URL: {exc}") from None
    if parts.scheme not in schemes:
        raise SettingsError("url", f"a {kind} handler takes {', '.join(schemes)} URLs")
    if not parts.hostname:
        raise SettingsError("url", "the URL needs a host")
    if parts.username or parts.password:
        raise SettingsError("url", "credentials go in 'credentials', never in the URL")
    if kind != "webhook" and (parts.query or parts.fragment):
        raise SettingsError("url", "takes no query or fragment")
    return parts.hostname, port or schemes[parts.scheme]


def check_settings(
    kind: str, url: str, settings: Mapping[str, Any], credentials: Mapping[str, Any] | None
) -> tuple[dict[str, Any], dict[str, str] | None]:
    """A handler's settings with defaults filled in, and its credentials (None: none);
    SettingsError naming the field (``settings.topic``...) if any is wrong."""
    if kind not in KINDS:
        raise SettingsError("type", f"one of {', '.join(TYPES)}")
    spec = KINDS[kind]
    check_url(kind, url)
    tls = urlsplit(url).scheme in TLS_SCHEMES
    out: dict[str, Any] = {}
    for name, value in settings.items():
        if name not in spec.settings:
            taken = ", ".join(spec.settings) or "none"
            raise SettingsError(f"settings.{name}", f"not a {kind} setting (takes: {taken})")
        if value is None:
            continue
        if kind == "webhook":  # its settings are no strings: the header module checks them
            try:
                checked = check_headers(value) if name == "headers" else check_timeout(value)
            except HeaderError as exc:
                raise SettingsError(exc.field, exc.reason) from None
            if checked:
                out[name] = checked
            continue
        default = spec.settings[name]
        limit = _max_chars(name, MAX_SETTING_CHARS)
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise SettingsError(f"settings.{name}", "must be true or false")
        elif not isinstance(value, str) or len(value) > limit:
            raise SettingsError(f"settings.{name}", f"a string of at most {limit}")
        if default is OPTIONAL and value == "":
            continue
        check = spec.templates.get(name)
        if check is not None:
            try:
                check(value)
            except templates.TemplateError as exc:
                raise SettingsError(f"settings.{name}", str(exc)) from None
        out[name] = value
    for name, default in spec.settings.items():
        if name not in out and default is not OPTIONAL:
            if default is None:
                raise SettingsError(f"settings.{name}", f"required for a {kind} handler")
            out[name] = default
    if kind == "s3":
        _check_bucket(out["bucket"])
    if kind == "amqp" and any(not c.isprintable() for c in out["exchange"]):
        raise SettingsError("settings.exchange", "must be printable")
    if "ca_cert" in out:
        _check_pem("settings.ca_cert", tls, check_certificates, out["ca_cert"])
    return out, _check_credentials(kind, spec, credentials, tls)


def _check_bucket(bucket: str) -> None:
    if not (3 <= len(bucket) <= 63) or not all(c.isalnum() or c in ".-" for c in bucket):
        raise SettingsError("settings.bucket", "3-63 letters, digits, dots and hyphens")


def _check_credentials(
    kind: str, spec: Kind, credentials: Mapping[str, Any] | None, tls: bool
) -> dict[str, str] | None:
    if not credentials:
        return None
    out = {}
    for name, value in credentials.items():
        if name not in spec.credentials:
            taken = ", ".join(spec.credentials) or "none"
            raise SettingsError(f"credentials.{name}", f"not a {kind} credential (takes: {taken})")
        if value is None:
            continue
        limit = _max_chars(name, MAX_CREDENTIAL_CHARS)
        if not isinstance(value, str) or not value or len(value) > limit:
            raise SettingsError(f"credentials.{name}", f"a non-empty string of at most {limit}")
        out[name] = value
    if kind == "webhook" and out:
        refusal = check_webhook_credentials(out)
        if refusal:
            field, _, reason = refusal.partition(": ")
            raise SettingsError(field, reason)
    if kind == "s3" and len(out) == 1:
        raise SettingsError("credentials", "give access_key_id and secret_access_key together")
    if "password" in out and "username" not in out:
        raise SettingsError("credentials.username", "required with a password")
    cert, key = out.get("client_cert"), out.get("client_key")
    if cert is not None or key is not None:
        if key is None:
            raise SettingsError("credentials.client_key", "required with a client_cert")
        if cert is None:
            raise SettingsError("credentials.client_cert", "required with a client_key")
        _check_pem("credentials.client_cert", tls, check_certificates, cert)
        _check_pem("credentials.client_key", tls, lambda pem: check_key(pem, cert), key)
    return out or None


def _max_chars(name: str, otherwise: int) -> int:
    return MAX_PEM_CHARS if name in PEMS else otherwise


def _check_pem(field: str, tls: bool, check: Callable[[str], object], pem: str) -> None:
    """SettingsError naming ``field`` if the URL is not TLS or ``check`` refuses ``pem``."""
    if not tls:
        raise SettingsError(field, "takes a TLS URL (mqtts://, tls://, amqps://)")
    try:
        check(pem)
    except PemError as exc:
        raise SettingsError(field, str(exc)) from None


@dataclass(frozen=True, slots=True)
class SinkConfig:
    """Everything a sink needs to connect: opened credentials included (never logged)."""

    type: str
    url: str
    settings: Mapping[str, Any]
    credentials: Mapping[str, str]
    allow_private: bool
    timeout: float

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme in TLS_SCHEMES

    @property
    def host(self) -> str:
        """The host the URL names (what a certificate is verified for)."""
        return urlsplit(self.url).hostname or ""

    def tls_context(self) -> ssl.SSLContext | None:
        """The TLS context of a ``mqtts``/``tls``/``amqps`` URL (verification on unless the
        settings turn it off, against ``ca_cert`` if set; the client certificate presented
        if the credentials hold one), None for a plain connection. It names the URL's host
        (SNI, the certificate's check) whatever address the connection goes to."""
        if not self.tls:
            return None
        return client_context(
            self.settings.get("tls_verify", True),
            self.settings.get("ca_cert"),
            self.credentials.get("client_cert"),
            self.credentials.get("client_key"),
            server_name=self.host,
        )

    def redact(self, text: str) -> str:
        """``text`` with every credential value masked: errors may quote a connect URL."""
        for value in self.credentials.values():
            text = text.replace(value, "***")
        return text


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One send: a handler's batch, its idempotency id, when it goes, the replay if any."""

    handler: Handler
    items: Sequence[Item]
    msg_id: str
    now: datetime
    replay_id: int | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """One broker message: where it goes, its content type and body, the events in it."""

    target: str
    content_type: str
    body: bytes
    event_ids: tuple[int, ...]


class Sink(Protocol):
    """Where a handler's batches go; opened per handler and worker."""

    async def send(self, out: Outgoing) -> SendResult:
        """Send one batch; never raises for what the network or the receiver does."""

    async def aclose(self) -> None: ...


def messages(out: Outgoing, template: str) -> list[Message]:
    """The batch as broker messages in order: one per event, or (for batches of more than
    one) one per run of consecutive events going to the same topic."""
    spec = out.handler.spec
    batched = spec.batch_max_events > 1
    if batched and templates.is_constant(template):  # one place: no record is parsed
        return [_message(spec.format, template.format_map({}), list(out.items), batched)]
    result: list[Message] = []
    run: list[Item] = []
    target = ""
    for item in out.items:
        here = templates.expand(template, item.record)
        if run and (here != target or not batched):
            result.append(_message(spec.format, target, run, batched))
            run = []
        target = here
        run.append(item)
    if run:
        result.append(_message(spec.format, target, run, batched))
    return result


def _message(format: str, target: str, items: list[Item], batched: bool) -> Message:
    content_type, body = encode(format, items, batched)
    return Message(target, content_type, body, tuple(item.event_id for item in items))


class BrokerSink(ABC):
    """A sink that keeps one connection to a broker: opened on demand through the target
    guard, dropped on any failure, every message of a send acknowledged before it counts."""

    def __init__(self, config: SinkConfig) -> None:
        self.config = config
        self.connected = False

    async def send(self, out: Outgoing) -> SendResult:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.config.timeout):
                if self.connected and not self._alive():  # closed while idle: reopen
                    await self._drop()
                if not self.connected:
                    host, port = check_url(self.config.type, self.config.url)
                    address = (await resolve(host, port, self.config.allow_private))[0]
                    # the address just checked, so a name that resolves elsewhere later
                    # cannot slip by; over TLS the context names the host (SNI, certificate)
                    await self._connect(address, port)
                    self.connected = True
                detail = await self._publish(out)
        except TargetRefused as exc:
            await self._drop()
            return SendResult(None, f"target refused: {exc}", _ms_since(started))
        except TimeoutError:
            await self._drop()
            return SendResult(None, "timeout", _ms_since(started))
        except Exception as exc:  # the broker's refusal or a network failure: retried
            await self._drop()
            error = self.config.redact(f"{type(exc).__name__}: {exc}")[:500]
            return SendResult(None, error, _ms_since(started))
        return SendResult(None, None, _ms_since(started), acked=True, detail=detail)

    async def _drop(self) -> None:
        self.connected = False
        try:
            await self._disconnect()
        except Exception as exc:  # a connection already broken may fail to close
            log.debug("delivery: closing a sink: %s", type(exc).__name__)

    async def aclose(self) -> None:
        await self._drop()

    def _alive(self) -> bool:
        """Whether the kept connection is still open, as far as the client knows."""
        return True

    @abstractmethod
    async def _connect(self, address: str, port: int) -> None:
        """Connect to ``address`` (checked, never the name: ``config.host`` is that)."""

    @abstractmethod
    async def _publish(self, out: Outgoing) -> str:
        """Send the batch; what the broker acknowledged, in a few words."""

    @abstractmethod
    async def _disconnect(self) -> None:
        """Close the connection if any (also one half opened)."""


def settings_of(handler: Handler) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(handler.spec.settings or "{}")
    return value


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
