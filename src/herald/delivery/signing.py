"""Standard Webhooks signatures, so receivers verify with the standard libraries."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signature_headers(
    msg_id: str, timestamp: datetime, body: bytes, keys: Sequence[str]
) -> dict[str, str]:
    """``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` (one per key: during a
    rotation both the new and the previous secret sign)."""
    data = body.decode()
    signatures = " ".join(Webhook(key).sign(msg_id, timestamp, data) for key in keys)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signatures,
    }
