"""Standard Webhooks signatures, so receivers verify with the standard libraries.

The signature is the spec's (``v1,`` and the base64 HMAC-SHA256 of ``id.timestamp.body``
under the secret's key), computed over the body's bytes as they are sent: no copy of the
body is decoded or joined to sign it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from datetime import datetime

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


@functools.lru_cache(maxsize=1024)
def _key(secret: str) -> bytes:
    """The key of a ``whsec_`` secret (decoded once per secret, not per request)."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX) + "==")


def signature(key: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "msg_id.timestamp.body">`` under ``key``'s secret."""
    mac = hmac.new(_key(key), f"{msg_id}.{timestamp}.".encode(), hashlib.sha256)
    mac.update(body)
    return "v1," + base64.b64encode(mac.digest()).decode()


def signature_headers(
    msg_id: str, timestamp: datetime, body: bytes, keys: Sequence[str]
) -> dict[str, str]:
    """``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` (one per key: during a
    rotation both the new and the previous secret sign)."""
    seconds = str(int(timestamp.timestamp()))
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": seconds,
        "webhook-signature": " ".join(signature(key, msg_id, seconds, body) for key in keys),
    }
