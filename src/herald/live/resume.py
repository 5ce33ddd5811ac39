"""Resume tokens of the live stream: a log position sealed for one organisation scope.

An SSE message's ``id:`` is such a token, so a client resumes with ``Last-Event-ID`` without
ever seeing a global log position (which would tell a tenant how much the others write).
The position is encrypted with AES-GCM under a key derived from the JWT secret, with a
fresh random nonce (two tokens of one position look unrelated) and the caller's scope as
associated data: a token altered, forged or from another organisation does not open.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_LABEL = b"herald/live-stream/resume-token/v1"
_NONCE = 12
_SEALED = _NONCE + 8 + 16  # nonce, a 64-bit position, the tag
TOKEN_CHARS = 48  # base64url of _SEALED bytes, unpadded


class InvalidResumeToken(ValueError):
    """Not a token this server sealed for this scope."""


def _binding(scope: tuple[int, ...] | None) -> bytes:
    """The associated data: whose positions these are (None: every organisation)."""
    return b"*" if scope is None else b"org:" + b",".join(b"%d" % o for o in sorted(scope))


class ResumeTokens:
    """Seals log positions into opaque tokens and opens them again."""

    def __init__(self, secret: str) -> None:
        key = hmac.new(secret.encode(), _LABEL, hashlib.sha256).digest()
        self._aead = AESGCM(key)

    def seal(self, seq: int, scope: tuple[int, ...] | None) -> str:
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, seq.to_bytes(8, "big"), _binding(scope))
        return base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, token: str, scope: tuple[int, ...] | None) -> int:
        """The position sealed in ``token`` for ``scope``; raises InvalidResumeToken."""
        if len(token) != TOKEN_CHARS:
            raise InvalidResumeToken(token)
        try:
            raw = base64.urlsafe_b64decode(token.encode("ascii"))
        except (UnicodeEncodeError, binascii.Error, ValueError):
            raise InvalidResumeToken(token) from None
        if len(raw) != _SEALED:
            raise InvalidResumeToken(token)
        try:
            plain = self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], _binding(scope))
        except InvalidTag:
            raise InvalidResumeToken(token) from None
        return int.from_bytes(plain, "big")
