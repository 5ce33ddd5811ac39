"""Resume tokens: a position sealed for one organisation scope, opaque and unforgeable."""

from __future__ import annotations

import base64

import pytest

from herald.live.resume import TOKEN_CHARS, InvalidResumeToken, ResumeTokens


def test_a_token_opens_to_its_position_for_its_scope_only() -> None:
    tokens = ResumeTokens("secret")
    for scope in [(7,), (1, 2), None, ()]:
        token = tokens.seal(2**64 - 1, scope)
        assert len(token) == TOKEN_CHARS
        assert tokens.open(token, scope) == 2**64 - 1
    sealed = tokens.seal(42, (7,))
    for other in [(8,), (7, 8), None, ()]:
        with pytest.raises(InvalidResumeToken):
            tokens.open(sealed, other)
    with pytest.raises(InvalidResumeToken):  # another server's key
        ResumeTokens("other secret").open(sealed, (7,))


def test_tokens_of_one_position_are_unrelated() -> None:
    tokens = ResumeTokens("secret")
    seen = {tokens.seal(42, (7,)) for _ in range(100)}
    assert len(seen) == 100


def test_every_altered_byte_is_refused() -> None:
    tokens = ResumeTokens("secret")
    raw = bytearray(base64.urlsafe_b64decode(tokens.seal(42, (7,))))
    for index in range(len(raw)):
        altered = bytearray(raw)
        altered[index] ^= 0x01
        with pytest.raises(InvalidResumeToken):
            tokens.open(base64.urlsafe_b64encode(bytes(altered)).decode(), (7,))


@pytest.mark.parametrize(
    "token", ["", "0", "42", "0_0", "A" * TOKEN_CHARS, "é" * TOKEN_CHARS, "!" * TOKEN_CHARS]
)
def test_garbage_is_refused(token: str) -> None:
    with pytest.raises(InvalidResumeToken):
        ResumeTokens("secret").open(token, (7,))
