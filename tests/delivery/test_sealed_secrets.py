"""Handler secrets at rest: sealed in the database, plaintext ones sealed on start, a key
rotation through HERALD_SECRET_KEY; receivers verify all along. A real ``herald serve`` on
each backend."""

from __future__ import annotations

from pathlib import Path

from cryptography.fernet import Fernet
from standardwebhooks import Webhook

from herald.delivery.signing import new_secret
from herald.handlers.types import HandlerSpec
from herald.store import open_store
from tests.delivery.receiver import Received, receiving, start_delivery_server, tenant
from tests.support.server import HeraldServer


def raw_secrets(database_url: str) -> dict[int, tuple[str, str | None]]:
    """The handlers' secret columns as a copy of the database shows them."""
    store = open_store(database_url, migrate=False)
    try:
        rows = store.read(  # type: ignore[attr-defined]
            lambda c: c.execute("SELECT id, secret, previous_secret FROM handlers").fetchall()
        )
    finally:
        store.close()
    return {row[0]: (row[1], row[2]) for row in rows}


def send_test(server: HeraldServer, token: str, handler_id: int, secret: str) -> Received:
    with receiving() as receiver:
        with server.client(token) as client:
            path = f"/event_handler/{handler_id}"
            assert client.patch(path, json={"url": receiver.url}).status_code == 200
            answer = client.post(f"{path}/test")
            assert answer.status_code == 200 and answer.json()["outcome"] == "delivered"
        [request] = receiver.delivered()
    Webhook(secret).verify(request.body, request.headers)
    return request


def test_secrets_are_sealed_at_rest_and_rotate(tmp_path: Path, database_url: str) -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    workdir = tmp_path / "herald"
    server = start_delivery_server(workdir, database_url, HERALD_SECRET_KEY=old_key)
    try:
        organisation, token = tenant(server)
        with server.client(token) as client:
            created = client.post(
                "/event_handler", json={"name": "h", "url": "http://127.0.0.1:9/"}
            ).json()
        sealed, _ = raw_secrets(database_url)[created["id"]]
        assert sealed.startswith("fernet:") and created["secret"] not in sealed
        assert created["secret"].removeprefix("whsec_") not in sealed
        send_test(server, token, created["id"], created["secret"])
    finally:
        server.stop()

    # a handler stored in plaintext (before sealing existed) is sealed on the next start
    legacy_secret = new_secret()
    store = open_store(database_url)
    try:
        legacy = store.handlers.create(
            organisation, HandlerSpec(name="old", url="http://127.0.0.1:9/"), legacy_secret
        )
    finally:
        store.close()
    assert raw_secrets(database_url)[legacy.id][0] == legacy_secret

    # rotation: the new key first, the old one still opening what it sealed
    server.env["HERALD_SECRET_KEY"] = f"{new_key},{old_key}"
    server.start()
    try:
        stored = raw_secrets(database_url)
        assert all(secret.startswith("fernet:") for secret, _ in stored.values())
        assert legacy_secret not in str(stored)
        only_new = {handler_id: Fernet(new_key.encode()) for handler_id in stored}
        for handler_id, (secret, _) in stored.items():  # resealed with the new key
            only_new[handler_id].decrypt(secret.removeprefix("fernet:").encode())
        send_test(server, token, created["id"], created["secret"])
        send_test(server, token, legacy.id, legacy_secret)
    finally:
        server.stop()

    # a process without the key cannot sign with (or show) any secret
    server.env["HERALD_SECRET_KEY"] = Fernet.generate_key().decode()
    server.start()
    try:
        with server.client(token) as client:
            refused = client.post(f"/event_handler/{created['id']}/test")
            assert refused.status_code == 503 and "key" in refused.json()["detail"]
    finally:
        server.stop()
