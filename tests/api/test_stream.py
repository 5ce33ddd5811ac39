"""The live stream: SSE against the app served in process."""

from __future__ import annotations

import select
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import pytest

from tests.support.herald import HERALD, Herald
from tests.support.inproc import InProcessHerald, start_in_process

DEADLINE = 60.0  # generous: waits end as soon as their condition holds


def post(herald: Herald, token: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    with herald.client(token) as client:
        response = client.post("/event", json=events)
    assert response.status_code == 201, response.text
    stored: list[dict[str, Any]] = response.json()
    return stored


def custom(org: int, code: int = 10001, **extra: Any) -> dict[str, Any]:
    return {"event_type": {"id": code}, "organisation": {"id": org}, **extra}


class Stream:
    """An SSE client reading messages on a thread, so tests wait with a deadline.

    ``messages`` are the events, ``closings`` the data of ``event: closed`` messages and
    ``start_ids`` the ids of id-only messages (where the stream starts).
    """

    def __init__(self, herald: Herald, token: str, params: str = "", **headers: str):
        self.messages: list[dict[str, Any]] = []
        self.closings: list[dict[str, Any]] = []
        self.start_ids: list[str] = []
        self.comments: list[str] = []
        self.ended = threading.Event()
        self.status = 0
        self._ready = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(30, read=60))
        url = f"{herald.url}/api/v1/event/stream{params}"
        self._headers = {"Authorization": f"Bearer {token}", **headers}
        self._thread = threading.Thread(target=self._run, args=(url,), daemon=True)
        self._thread.start()
        assert self._ready.wait(DEADLINE)

    def _run(self, url: str) -> None:
        try:
            with self._client.stream("GET", url, headers=self._headers) as response:
                self.status = response.status_code
                self._ready.set()
                message: dict[str, Any] = {}
                for line in response.iter_lines():
                    if line.startswith(":"):
                        self.comments.append(line[1:].strip())
                    elif line.startswith("id: "):
                        message["id"] = line[4:]
                    elif line.startswith("event: "):
                        message["event"] = line[7:]
                    elif line.startswith("data: "):
                        message["data"] = orjson.loads(line[6:])
                    elif not line:
                        self._received(message)
                        message = {}
        except httpx.HTTPError:
            pass
        finally:
            self._ready.set()
            self.ended.set()

    def _received(self, message: dict[str, Any]) -> None:
        if message.get("event") == "closed":
            self.closings.append(message["data"])
        elif "data" in message:
            self.messages.append(message)
        elif "id" in message:
            self.start_ids.append(message["id"])

    def wait_for(self, count: int) -> list[dict[str, Any]]:
        deadline = time.monotonic() + DEADLINE
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.messages) >= count, self.messages
        return self.messages

    def wait_comment(self, text: str) -> None:
        deadline = time.monotonic() + DEADLINE
        while not any(text in c for c in self.comments) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert any(text in c for c in self.comments), self.comments

    def wait_start(self) -> str:
        """The id of the stream's first message: where it starts."""
        self.wait_comment("stream open")
        assert len(self.start_ids) == 1, self.start_ids
        return self.start_ids[0]

    def close(self) -> None:
        self._client.close()
        self._thread.join(5)


STREAM_ENV = {
    "HERALD_STREAM_HEARTBEAT_SECONDS": "0.5",
    "HERALD_STREAM_BUFFER_EVENTS": "20",
    "HERALD_STREAM_RECHECK_SECONDS": "0.3",
    "HERALD_STREAM_MAX_PER_TOKEN": "2",
    "HERALD_STREAM_MAX_PER_ORGANISATION": "3",
}


@pytest.fixture
def stream_server(tmp_path: Path) -> Iterator[InProcessHerald]:
    herald = start_in_process(tmp_path / "herald", env=STREAM_ENV)
    try:
        yield herald
    finally:
        herald.stop()


def test_new_events_arrive_filtered_with_resume_ids(stream_server: Herald) -> None:
    admin = stream_server.admin_token
    post(stream_server, admin, [custom(1, 10001, description="before")])
    stream = Stream(stream_server, admin, "?q=type:10002|10003")
    try:
        stream.wait_start()
        post(stream_server, admin, [custom(1, 10001), custom(1, 10002), custom(1, 10003)])
        messages = stream.wait_for(2)
        assert [m["data"]["event_type"]["id"] for m in messages] == [10002, 10003]
        assert len({m["id"] for m in messages}) == 2
        stream.wait_comment("heartbeat")
    finally:
        stream.close()
    assert all(m["data"]["description"] != "before" for m in stream.messages)


def test_last_event_id_resumes_after_the_last_seen(stream_server: Herald) -> None:
    admin = stream_server.admin_token
    first = Stream(stream_server, admin)
    try:
        first.wait_start()
        post(stream_server, admin, [custom(1, 10001 + i) for i in range(3)])
        seen = first.wait_for(3)
    finally:
        first.close()
    post(stream_server, admin, [custom(1, 10010)])  # while disconnected
    resumed = Stream(stream_server, admin, **{"Last-Event-ID": str(seen[1]["id"])})
    try:
        messages = resumed.wait_for(2)
        assert [m["data"]["event_type"]["id"] for m in messages[:2]] == [10003, 10010]
    finally:
        resumed.close()


def test_a_tenant_sees_only_its_organisation(stream_server: Herald) -> None:
    other = stream_server.create_org("Other")
    mine = stream_server.create_org("Mine")
    token = stream_server.create_token(mine, "event:read")
    stream = Stream(stream_server, token, "?organisation=" + str(other), **{"Last-Event-ID": "0"})
    unfiltered = Stream(stream_server, token, **{"Last-Event-ID": "0"})
    try:
        admin = stream_server.admin_token
        post(stream_server, admin, [custom(other, 10001), custom(mine, 10002)])
        assert [m["data"]["organisation"]["id"] for m in unfiltered.wait_for(1)] == [mine]
        stream.wait_comment("heartbeat")
        assert stream.messages == []
    finally:
        stream.close()
        unfiltered.close()


@pytest.mark.parametrize(
    ("params", "headers", "status", "field"),
    [
        ("?q=bogus:1", {}, 422, "q.bogus"),
        ("", {"Last-Event-ID": "abc"}, 400, "Last-Event-ID"),
        ("", {"Last-Event-ID": "99999999999999999999999"}, 400, "Last-Event-ID"),
        ("", {"Last-Event-ID": "0_0"}, 400, "Last-Event-ID"),
        ("", {"Last-Event-ID": "12"}, 400, "Last-Event-ID"),  # a bare log position
        ("", {"Last-Event-ID": "A" * 48}, 400, "Last-Event-ID"),  # the shape, not sealed
    ],
)
def test_bad_requests_answer_problems(
    herald: Herald, params: str, headers: dict[str, str], status: int, field: str
) -> None:
    with herald.client(herald.admin_token) as client:
        response = client.get(f"/event/stream{params}", headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == field


def test_needs_a_token_with_event_read(herald: Herald) -> None:
    org = herald.create_org("Acme")
    writer = herald.create_token(org, "event:create")
    with herald.client() as anonymous, herald.client(writer) as client:
        assert anonymous.get("/event/stream").status_code == 401
        assert client.get("/event/stream").status_code == 403


def test_a_client_that_does_not_read_is_cut_off(stream_server: InProcessHerald) -> None:
    admin = stream_server.admin_token
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", stream_server.port))
    sock.sendall(
        b"GET /api/v1/event/stream HTTP/1.1\r\nHost: x\r\n"
        + f"Authorization: Bearer {admin}\r\n\r\n".encode()
    )
    time.sleep(0.5)  # let the stream join the feed before the flood
    filler = "x" * 3000
    try:
        for _ in range(60):  # about 18 MB: far more than socket buffers and 20 queued events
            post(stream_server, admin, [custom(1, description=filler)] * 100)
            if "fell 20 events behind" in stream_server.log():
                break
        deadline = time.monotonic() + DEADLINE
        while "fell 20 events behind" not in stream_server.log():
            assert time.monotonic() < deadline, "the slow client was never cut off"
            time.sleep(0.1)
        sock.settimeout(DEADLINE)
        while sock.recv(1 << 20):  # the server closes the connection: reading reaches EOF
            pass
    finally:
        sock.close()
    with stream_server.client(admin) as client:  # and the server is fine
        assert client.get("/event", params={"per_page": 1}).status_code == 200


def test_events_tail_follows_the_stream(stream_server: Herald) -> None:
    admin = stream_server.admin_token
    env = {**stream_server.env, "HERALD_TOKEN": admin, "HERALD_URL": stream_server.url}
    tail = subprocess.Popen(
        [*HERALD, "events", "tail", "--json", "-q", "type:10002"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert tail.stdout is not None
    try:
        deadline = time.monotonic() + DEADLINE
        line = b""
        while not line and time.monotonic() < deadline:  # until tail has joined the stream
            post(stream_server, admin, [custom(1, 10001), custom(1, 10002)])
            ready, _, _ = select.select([tail.stdout], [], [], 0.5)
            if ready:
                line = tail.stdout.readline()
        assert orjson.loads(line)["event_type"]["id"] == 10002
    finally:
        tail.terminate()
        tail.communicate(timeout=10)


def _jwt(herald: Herald, token: str) -> str:
    with herald.client() as client:
        response = client.post("/authenticate", json={"application_token": token})
    assert response.status_code == 200, response.text
    credential: str = response.json()["auth_token"]
    return credential


def _claims(credential: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(credential, options={"verify_signature": False})
    return claims


def test_a_revoked_token_loses_its_open_stream(stream_server: Herald) -> None:
    org = stream_server.create_org("Doomed Co")
    token = stream_server.create_token(org, "event:read", "event:create")
    stream = Stream(stream_server, token)
    try:
        stream.wait_start()
        post(stream_server, token, [custom(org, description="before")])
        stream.wait_for(1)
        token_id = _claims(_jwt(stream_server, token))["sub"]
        stream_server.cli("token", "revoke", token_id, "--database", stream_server.database_url)
        assert stream.ended.wait(DEADLINE), "the stream outlived its token"
        assert stream.closings == [{"reason": "token revoked"}]
        post(stream_server, stream_server.admin_token, [custom(org, description="after")])
        time.sleep(0.5)
        assert [m["data"]["description"] for m in stream.messages] == ["before"]
    finally:
        stream.close()


def test_a_stream_ends_when_its_jwt_expires(tmp_path: Path) -> None:
    env = {"HERALD_JWT_TTL_SECONDS": "2", "HERALD_STREAM_RECHECK_SECONDS": "0.3"}
    herald = start_in_process(tmp_path / "herald", env=env)
    try:
        org = herald.create_org("Short Lived Co")
        credential = _jwt(herald, herald.create_token(org, "event:read"))
        stream = Stream(herald, credential)
        try:
            stream.wait_start()
            assert stream.ended.wait(DEADLINE), "the stream outlived its JWT"
            assert time.time() >= _claims(credential)["exp"]
            assert len(stream.closings) == 1
            assert "expired" in stream.closings[0]["reason"]
        finally:
            stream.close()
    finally:
        herald.stop()


def _refused(herald: Herald, token: str, setting: str) -> None:
    with herald.client(token) as client:
        response = client.get("/event/stream")
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert setting in response.json()["detail"]


def test_open_streams_are_capped_per_token_and_per_organisation(
    stream_server: Herald,
) -> None:
    """The fixture allows 2 streams per token and 3 per organisation."""
    org = stream_server.create_org("Greedy Co")
    first, second = (stream_server.create_token(org, "event:read") for _ in range(2))
    other = stream_server.create_token(stream_server.create_org("Other Co"), "event:read")
    streams = [Stream(stream_server, first), Stream(stream_server, first)]
    try:
        _refused(stream_server, first, "HERALD_STREAM_MAX_PER_TOKEN")
        streams.append(Stream(stream_server, second))
        _refused(stream_server, second, "HERALD_STREAM_MAX_PER_ORGANISATION")
        streams.append(Stream(stream_server, other))  # another organisation has its own
        assert [s.status for s in streams] == [200] * 4
        streams.pop(0).close()  # a closed stream frees its place
        deadline = time.monotonic() + DEADLINE
        while True:
            again = Stream(stream_server, second)
            streams.append(again)
            if again.status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert again.status == 200
    finally:
        for stream in streams:
            stream.close()


def test_ids_and_comments_reveal_nothing_of_other_tenants(stream_server: Herald) -> None:
    a_org, b_org = stream_server.create_org("A"), stream_server.create_org("B")
    a_token = stream_server.create_token(a_org, "event:read", "event:create")
    b_token = stream_server.create_token(b_org, "event:read", "event:create")
    a = Stream(stream_server, a_token)
    try:
        start = a.wait_start()
        post(stream_server, b_token, [custom(b_org)] * 57)
        post(stream_server, a_token, [custom(a_org, description="mine")])
        (mine,) = a.wait_for(1)
        a.wait_comment("heartbeat")
    finally:
        a.close()
    assert [m["data"]["description"] for m in a.messages] == ["mine"]
    assert not any(ch.isdigit() for comment in a.comments for ch in comment)
    for token in (start, mine["id"]):
        assert len(token) == 48 and not token.isdigit()
    # the opening id resumes exactly there; the same position never shows the same id twice
    resumed = Stream(stream_server, a_token, **{"Last-Event-ID": start})
    try:
        (again,) = resumed.wait_for(1)
    finally:
        resumed.close()
    assert again["data"] == mine["data"] and again["id"] != mine["id"]
    # another organisation's id, or an altered one, is refused
    tampered = start[:10] + ("A" if start[10] != "A" else "B") + start[11:]
    with stream_server.client(b_token) as b, stream_server.client(a_token) as a_client:
        for client, resume in ((b, start), (a_client, tampered)):
            response = client.get("/event/stream", headers={"Last-Event-ID": resume})
            assert response.status_code == 400, response.text
            assert response.json()["errors"][0]["field"] == "Last-Event-ID"


def test_events_tail_says_why_the_server_closed_and_stops_on_revocation(
    stream_server: Herald,
) -> None:
    org = stream_server.create_org("Tail Co")
    token = stream_server.create_token(org, "event:read", "event:create")
    env = {**stream_server.env, "HERALD_TOKEN": token, "HERALD_URL": stream_server.url}
    tail = subprocess.Popen(
        [*HERALD, "events", "tail", "--json", "--interval", "0.2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert tail.stdout is not None
    try:
        deadline = time.monotonic() + DEADLINE
        line = b""
        while not line and time.monotonic() < deadline:  # until tail has joined the stream
            post(stream_server, token, [custom(org, 10002)])
            ready, _, _ = select.select([tail.stdout], [], [], 0.5)
            if ready:
                line = tail.stdout.readline()
        assert orjson.loads(line)["event_type"]["id"] == 10002
        token_id = _claims(_jwt(stream_server, token))["sub"]
        stream_server.cli("token", "revoke", token_id, "--database", stream_server.database_url)
        _, stderr = tail.communicate(timeout=DEADLINE)
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.communicate(timeout=10)
    assert tail.returncode == 1
    said = " ".join(stderr.decode().split())
    assert "the server closed the stream (token revoked)" in said
    assert "401" in said


def test_a_stopping_server_says_so_to_its_streams(stream_server: Herald) -> None:
    stream = Stream(stream_server, stream_server.admin_token)
    try:
        stream.wait_start()
        stream.wait_comment("heartbeat")  # joined the feed
        stream_server.stop()
        assert stream.ended.wait(DEADLINE)
        assert stream.closings == [{"reason": "server stopping"}]
    finally:
        stream.close()
