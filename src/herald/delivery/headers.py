"""A webhook handler's own request headers: its receiver credentials (``Authorization``,
Bearer or Basic) and its bounded custom headers, and its per-handler timeout."""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from typing import Any

MAX_HEADERS = 10
MAX_HEADER_NAME_CHARS = 64
MAX_HEADER_VALUE_CHARS = 1024
MIN_TIMEOUT_SECONDS = 0.5
MAX_TIMEOUT_SECONDS = 60.0
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token
_VALUE = re.compile(r"[\t\x20-\x7e]*")  # visible ASCII, space and tab: never CR or LF
RESERVED = frozenset(
    {
        # hop-by-hop (RFC 9110 7.6.1) and what the HTTP client frames the request with
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "expect",
        # what Herald sets itself
        "authorization",
        "content-type",
        "herald-handler-id",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
)


class HeaderError(ValueError):
    """A header or timeout that cannot be used: ``field`` (as the API names it) and why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def check_headers(value: Any) -> dict[str, str]:
    """A handler's custom headers as they are stored; HeaderError naming the bad one."""
    field = "settings.headers"
    if not isinstance(value, Mapping):
        raise HeaderError(field, "an object of header names and values")
    if len(value) > MAX_HEADERS:
        raise HeaderError(field, f"at most {MAX_HEADERS} headers")
    out: dict[str, str] = {}
    seen: set[str] = set()
    for name, text in value.items():
        where = f"{field}.{str(name)[:MAX_HEADER_NAME_CHARS]}"
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise HeaderError(
                where, "a header name is a token: letters, digits and !#$%&'*+.^_`|~-"
            )
        if len(name) > MAX_HEADER_NAME_CHARS:
            raise HeaderError(where, f"a header name of at most {MAX_HEADER_NAME_CHARS} characters")
        lower = name.lower()
        if lower in RESERVED:
            reason = (
                "set the receiver's credentials instead (credentials.token: Bearer; "
                "credentials.username and password: Basic)"
                if lower == "authorization"
                else "Herald or the HTTP connection sets this header"
            )
            raise HeaderError(where, reason)
        if lower in seen:
            raise HeaderError(where, "given twice (header names are case-insensitive)")
        seen.add(lower)
        if not isinstance(text, str) or len(text) > MAX_HEADER_VALUE_CHARS:
            raise HeaderError(where, f"a string of at most {MAX_HEADER_VALUE_CHARS} characters")
        if not _VALUE.fullmatch(text):
            raise HeaderError(where, "printable ASCII only (no CR, LF or other control characters)")
        out[name] = text.strip(" \t")
    return out


def check_timeout(value: Any) -> float:
    """A per-handler timeout in seconds; HeaderError if out of bounds."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise HeaderError("settings.timeout_seconds", "a number of seconds")
    if not MIN_TIMEOUT_SECONDS <= value <= MAX_TIMEOUT_SECONDS:
        raise HeaderError(
            "settings.timeout_seconds",
            f"between {MIN_TIMEOUT_SECONDS:g} and {MAX_TIMEOUT_SECONDS:g} seconds",
        )
    return float(value)


def authorization(credentials: Mapping[str, str]) -> str | None:
    """The ``Authorization`` value a webhook's credentials make: ``Bearer <token>`` or
    ``Basic <base64 username:password>``; None without credentials."""
    token = credentials.get("token")
    if token is not None:
        return f"Bearer {token}"
    username = credentials.get("username")
    if username is not None:
        pair = f"{username}:{credentials.get('password', '')}".encode()
        return "Basic " + base64.b64encode(pair).decode()
    return None


def check_webhook_credentials(credentials: Mapping[str, str]) -> str | None:
    """Why a webhook's credentials cannot make one ``Authorization`` header (None: they
    can), as ``field: reason``."""
    if "token" in credentials and ("username" in credentials or "password" in credentials):
        return "credentials.token: give a token (Bearer) or username and password (Basic), not both"
    if "username" in credentials and "password" not in credentials:
        return "credentials.password: required with a username (Basic)"
    for name, value in credentials.items():
        if not _VALUE.fullmatch(value):
            return f"credentials.{name}: printable ASCII only (no CR, LF or control characters)"
    if ":" in credentials.get("username", ""):
        return "credentials.username: must not hold ':' (Basic)"
    return None
