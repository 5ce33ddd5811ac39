"""One webhook request of a handler: formatted, signed, with its idempotency id."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime

from herald.delivery.formats import Item, encode
from herald.delivery.signing import signature_headers
from herald.handlers.types import Handler
from herald.sealing import SecretBox
from herald.timefmt import to_ms


def signing_keys(handler: Handler, now: datetime, box: SecretBox | None) -> list[str]:
    """The current secret, and the previous one while it is still valid after a rotation,
    opened with ``box`` (None: stored in plaintext, as tests do)."""
    stored = [handler.secret]
    until = handler.previous_secret_until_ms
    if handler.previous_secret and until is not None and until > to_ms(now):
        stored.append(handler.previous_secret)
    return [_opened(box, value) for value in stored] if box else stored


@functools.lru_cache(maxsize=1024)
def _opened(box: SecretBox, sealed: str) -> str:
    """A sealed secret opened, once per box and sealed value (not per request: a Fernet
    token's check and decryption cost more than the signature)."""
    return box.open(sealed)


def build_request(
    handler: Handler,
    items: Sequence[Item],
    msg_id: str,
    now: datetime,
    box: SecretBox | None,
    extra: Mapping[str, str] | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a request carrying ``items``; signed as of ``now``; ``extra``:
    the handler's own headers (custom ones and ``Authorization``, see ``WebhookSink``).
    SecretUnavailable if ``box`` cannot open the handler's secret."""
    content_type, body = encode(handler.spec.format, items, handler.spec.batch_max_events > 1)
    headers = {
        **(extra or {}),
        "Content-Type": content_type,
        "Herald-Handler-Id": str(handler.id),
        **signature_headers(msg_id, now, body, signing_keys(handler, now, box)),
    }
    return body, headers
