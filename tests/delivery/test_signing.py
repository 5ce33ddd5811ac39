"""Herald's Standard Webhooks signature is the reference library's, byte for byte."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook

from herald.delivery.signing import new_secret, signature_headers


@settings(max_examples=100, deadline=None)
@given(
    st.text(min_size=1, max_size=40),
    st.integers(0, 2**33),
    st.text(max_size=300).map(str.encode),
)
def test_signatures_are_the_reference_librarys(msg_id: str, seconds: int, body: bytes) -> None:
    keys = [new_secret(), new_secret()]
    at = datetime.fromtimestamp(seconds, UTC)
    headers = signature_headers(msg_id, at, body, keys)
    expected = " ".join(Webhook(key).sign(msg_id, at, body.decode()) for key in keys)
    assert headers["webhook-signature"] == expected
    assert headers["webhook-timestamp"] == str(seconds)
