"""The web console end to end: a real ``herald serve`` driven by the system's headless Chromium.

Each step saves a screenshot under ``test-artifacts/console/`` for a human to look at.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Response, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from tests.delivery.sinks.pki import Authority
from tests.support.server import HeraldServer, start_server

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
TIMEOUT_MS = 15_000
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
    ),
]


class Failing(BaseHTTPRequestHandler):
    """A webhook receiver that always answers 503."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(503)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def receiver() -> Iterator[str]:
    http = HTTPServer(("127.0.0.1", 0), Failing)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_address[1]}/hook"
    finally:
        http.shutdown()
        http.server_close()


@pytest.fixture(scope="module")
def console_server(
    tmp_path_factory: pytest.TempPathFactory, receiver: str
) -> Iterator[HeraldServer]:
    env = {"HERALD_ALLOW_PRIVATE_TARGETS": "true", "HERALD_STREAM_HEARTBEAT_SECONDS": "2"}
    herald = start_server(tmp_path_factory.mktemp("console") / "herald", env=env)
    try:
        seed(herald, receiver)
        yield herald
    finally:
        herald.stop()


def seed(server: HeraldServer, receiver: str) -> None:
    """A small fleet's day through the API, and a handler whose receiver always fails."""
    now = time.time()
    events: list[dict[str, Any]] = []
    for i in range(40):
        endpoint = {"id": 100 + i % 4, "name": f"tracker-{100 + i % 4}", "imei": f"35209900{i:07d}"}
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3600 * (i % 20) - 60))
        network = {"name": "Vodafone", "country": {"name": "Germany", "mcc": "262"}}
        kind = i % 4
        event: dict[str, Any] = {"organisation": {"id": 1}, "timestamp": at, "endpoint": endpoint}
        if kind == 0:
            event |= {"event_type": {"id": 1}, "detail": network}
        elif kind == 1:
            event |= {"event_type": {"id": 3}, "detail": {**network, "pdp_context": {"apn": "em"}}}
        elif kind == 2:
            volume = {"total": 1.25 + i, "rx": 1.0, "tx": 0.25 + i}
            event |= {"event_type": {"id": 5}, "detail": {**network, "volume": volume}}
        else:
            event |= {
                "event_type": {"id": 10001},
                "event_severity": {"id": 2},
                "alert": True,
                "description": "Battery critically low",
            }
        events.append(event)
    with server.client(server.admin_token) as client:
        assert client.post("/event", json=events).status_code == 201
        handler = {"name": "billing webhook", "url": receiver, "organisation_id": 1}
        response = client.post("/event_handler", json=handler)
        assert response.status_code == 201, response.text
        handler_id = response.json()["id"]
        assert (
            client.post(
                "/event", json={"event_type": {"id": 10002}, "organisation": {"id": 1}}
            ).status_code
            == 201
        )
        deadline = time.monotonic() + 30
        while not client.get(f"/event_handler/{handler_id}/delivery").json():
            assert time.monotonic() < deadline, "the handler never attempted a delivery"
            time.sleep(0.2)
        while client.get("/endpoint/status_counts").json()["total"] < 4:  # projected
            assert time.monotonic() < deadline, "the device states never caught up"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser, console_server: HeraldServer) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        yield page
    finally:
        context.close()


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page: Page, server: HeraldServer) -> None:
    page.goto(server.url + "/")
    page.get_by_label("Application token").fill(server.admin_token)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Dashboard").wait_for()


def test_sign_in_and_dashboard(page: Page, console_server: HeraldServer) -> None:
    page.goto(console_server.url + "/")
    page.get_by_role("heading", name="Sign in to Herald").wait_for()
    shot(page, "01-sign-in")
    page.get_by_label("Application token").fill("hrd_wrong")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Sign-in failed").wait_for()
    sign_in(page, console_server)
    page.get_by_text("Top endpoints by data volume").wait_for()
    page.locator(".chart svg rect").first.wait_for()  # each panel fills in as it answers
    page.locator(".bars").nth(2).wait_for()
    assert "tracker-" in page.locator(".bars").nth(2).inner_text()
    page.get_by_text("Battery critically low").first.wait_for()
    shot(page, "02-dashboard")


def test_filter_the_log_open_an_event_and_watch_live(
    page: Page, console_server: HeraldServer
) -> None:
    sign_in(page, console_server)
    page.get_by_role("link", name="Events").click()
    page.get_by_label("Type", exact=True).fill("5")
    page.get_by_role("button", name="Apply filters").click()
    page.get_by_text("10 events · page 1 of 1").wait_for()
    rows = page.locator("tbody tr")
    assert rows.count() == 10
    assert all("Delete PDP Context" in text for text in rows.all_inner_texts())
    shot(page, "03-events-filtered")

    rows.first.focus()
    page.keyboard.press("Enter")
    drawer = page.locator("#drawer")
    drawer.get_by_text("volume {…}").wait_for()
    assert "Vodafone" in drawer.inner_text()
    shot(page, "04-event-json")
    page.keyboard.press("Escape")
    assert drawer.is_hidden()

    page.get_by_label("Type", exact=True).fill("")
    page.get_by_role("button", name="Apply filters").click()
    page.get_by_role("button", name="Live").click()
    page.get_by_text("Live: new events appear at the top.").wait_for()
    with console_server.client(console_server.admin_token) as client:
        fresh = {
            "event_type": {"id": 10003},
            "organisation": {"id": 1},
            "description": "Door opened at depot 7",
        }
        assert client.post("/event", json=fresh).status_code == 201
    first = page.locator("tbody tr").first
    first.get_by_text("Door opened at depot 7").wait_for()
    shot(page, "05-live")


def test_device_timeline(page: Page, console_server: HeraldServer) -> None:
    sign_in(page, console_server)
    page.goto(console_server.url + "/#/device/102")
    page.get_by_role("heading", name="Device tracker-102").wait_for()
    assert page.locator(".timeline li").count() == 10
    assert "Delete PDP Context" in page.locator(".timeline").inner_text()
    page.get_by_role("heading", name="Usage per day, last 30 days").wait_for()
    shot(page, "06-device")


def test_devices_by_status_and_a_devices_state(page: Page, console_server: HeraldServer) -> None:
    """Endpoint 100 only attaches (a minute ago), 101 opens sessions (an hour ago), 102 ends
    them (two hours ago), 103 only reports its battery (three hours ago)."""
    sign_in(page, console_server)
    tiles = page.locator("a.tile")
    tiles.first.wait_for()
    assert [tiles.nth(i).inner_text().split() for i in range(4)] == [
        ["1", "online", "devices"],
        ["2", "attached", "devices"],
        ["1", "offline", "devices"],
        ["0", "blocked", "devices"],
    ]
    tiles.first.click()
    page.get_by_role("heading", name="Devices").wait_for()
    page.get_by_text("1 device · page 1 of 1").wait_for()
    assert page.get_by_role("button", name="Online · 1").get_attribute("aria-pressed") == "true"
    assert "tracker-101" in page.locator("tr.device").inner_text()
    shot(page, "12-devices-online")
    page.get_by_role("button", name="All · 4").click()
    page.get_by_text("4 devices · page 1 of 1").wait_for()
    page.get_by_label("Query (q)").fill("quiet:90m")  # the devices silent for 90 minutes
    page.get_by_role("button", name="Apply filters").click()
    page.get_by_text("2 devices · page 1 of 1").wait_for()
    assert sorted(page.locator("tr.device td:first-child").all_inner_texts()) == [
        "tracker-102",
        "tracker-103",
    ]
    page.get_by_label("Query (q)").fill("quiet:soon")
    page.get_by_role("button", name="Apply filters").click()
    page.get_by_text("q.quiet: must be minutes, hours or days").wait_for()
    page.get_by_label("Query (q)").fill("")
    page.get_by_label("Name contains").fill("101")
    page.get_by_role("button", name="Apply filters").click()
    page.get_by_text("1 device · page 1 of 1").wait_for()
    shot(page, "13-devices")
    page.get_by_role("link", name="tracker-101").click()
    page.get_by_role("heading", name="Device tracker-101").wait_for()
    facts = page.locator("dl.facts")
    facts.wait_for()
    text = facts.inner_text()
    assert "ONLINE" in text and "Vodafone · Germany" in text and "APN em" in text, text
    shot(page, "14-device-state")


def test_device_usage_panel(page: Page, console_server: HeraldServer) -> None:
    """Usage records of one device, and another's closed sessions, as the daily chart."""
    end = time.time() - 120
    stamp = [time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end - s)) for s in (60, 0)]
    span = {"start_timestamp": stamp[0], "end_timestamp": stamp[1], "endpoint": {"id": 103}}
    records = [
        {"id": 9001, "traffic_type": {"id": 5}, **span, "volume": {"rx": 1.5, "tx": 0.25}},
        {"id": 9002, "traffic_type": {"id": 6}, **span, "volume": {"rx": 0, "tx": 1}},
        {"id": 9003, "traffic_type": {"id": 6}, **span, "volume": {"rx": 1, "tx": 0}},
    ]
    with console_server.client(console_server.admin_token) as client:
        answer = client.post("/ingest/1nce", params={"organisation": 1}, json=records)
        assert answer.status_code == 200 and answer.json()["stored"] == 3, answer.text
    sign_in(page, console_server)
    page.goto(console_server.url + "/#/device/103")
    page.get_by_role("heading", name="Usage per day, last 30 days").wait_for()
    summary = page.locator(".usage-summary").inner_text()
    assert summary == "Data 1.750 MB (received 1.500, sent 0.250) · SMS 1 sent, 1 received"
    assert page.locator(".usage svg rect").count() == 4  # rx, tx, MO, MT of one day at most
    shot(page, "06b-device-usage")
    page.goto(console_server.url + "/#/device/102")  # no records: its sessions' volumes
    page.get_by_role("heading", name="Device tracker-102").wait_for()
    page.get_by_role("heading", name="Usage per day, last 30 days").wait_for()
    sessions = page.locator(".usage-summary").inner_text()
    assert sessions == "Data 212.500 MB (received 10.000, sent 202.500) · SMS 0 sent, 0 received"


def test_failing_handler_deliveries_and_replay(page: Page, console_server: HeraldServer) -> None:
    sign_in(page, console_server)
    page.get_by_role("link", name="Handlers").click()
    page.get_by_text("billing webhook").wait_for()
    page.get_by_role("link", name="Deliveries").click()
    page.get_by_role("heading", name="Delivery log · billing webhook").wait_for()
    assert "503" in page.locator("tr.delivery").first.inner_text()
    page.get_by_role("button", name="Replay last hour").click()
    page.get_by_text("Replay of the last hour queued.").wait_for()
    shot(page, "07-handlers")


def open_mqtt_form(page: Page, server: HeraldServer, name: str, url: str, topic: str) -> None:
    """Signed in, the new handler form filled for an MQTT handler up to its topic."""
    sign_in(page, server)
    page.get_by_role("link", name="Handlers").click()
    page.get_by_role("heading", name="New handler").wait_for()
    page.locator("#hf-type").select_option("mqtt")
    page.locator("#hf-name").fill(name)
    page.locator("#hf-url").fill(url)
    page.locator("#hf-topic").fill(topic)


def test_create_edit_and_test_an_mqtt_handler(page: Page, console_server: HeraldServer) -> None:
    topic = f"herald-console-{uuid.uuid4().hex[:12]}/{{event_type}}"
    password = "pw-" + uuid.uuid4().hex
    open_mqtt_form(page, console_server, "fleet mqtt", "mqtt://127.0.0.1:1883", topic)
    page.locator("#hf-username").fill("herald")
    page.locator("#hf-password").fill(password)
    page.locator("#hf-org").fill("1")
    shot(page, "10-handler-form")
    page.get_by_role("button", name="Create handler").click()
    saved = page.get_by_text("Saved handler").inner_text()
    handler_id = int(saved.removeprefix("Saved handler ").rstrip("."))
    with console_server.client(console_server.admin_token) as client:
        handler = client.get(f"/event_handler/{handler_id}").json()
    assert handler["type"] == "mqtt" and handler["settings"]["topic"] == topic
    assert handler["credentials_set"] and password not in str(handler)

    page.goto(f"{console_server.url}/#/handlers/{handler_id}/edit")
    page.get_by_role("heading", name="Edit handler · fleet mqtt").wait_for()
    page.locator("#hf-topic").fill(topic + "/edited")
    page.get_by_role("button", name="Save").click()
    page.get_by_text(f"Saved handler {handler_id}.").wait_for()
    with console_server.client(console_server.admin_token) as client:
        edited = client.get(f"/event_handler/{handler_id}").json()
    assert edited["settings"]["topic"] == topic + "/edited" and edited["credentials_set"]

    page.goto(f"{console_server.url}/#/handlers/{handler_id}")
    page.get_by_role("button", name="Send test event").click()
    page.get_by_text("Test: delivered · PUBACK for 1 message").wait_for()
    shot(page, "11-handler-test")


def test_an_mqtts_handler_takes_its_certificates_as_pem(
    page: Page, console_server: HeraldServer
) -> None:
    """The broker's CA and the client's certificate and key are pasted, many lines each; the
    key is write-only: never shown again, the field empty once saved."""
    authority = Authority("console test CA")
    client = authority.issue("herald-console")
    open_mqtt_form(
        page, console_server, "fleet mqtts", "mqtts://127.0.0.1:8883", "herald/{event_type}"
    )
    page.locator("#hf-ca_cert").fill(authority.pem)
    page.locator("#hf-client_cert").fill(client.cert)
    page.locator("#hf-client_key").fill(authority.issue("another").key)  # not the cert's key
    page.locator("#hf-org").fill("1")
    page.get_by_role("button", name="Create handler").click()
    refused = page.get_by_text("Not saved:")
    refused.wait_for()
    assert "client_key" in refused.inner_text()
    page.locator("#hf-client_key").fill(client.key)
    shot(page, "12-handler-mtls")
    page.get_by_role("button", name="Create handler").click()
    saved = page.get_by_text("Saved handler").inner_text()
    handler_id = int(saved.removeprefix("Saved handler ").rstrip("."))
    assert page.locator("#hf-client_key").input_value() == ""
    with console_server.client(console_server.admin_token) as api:
        handler = api.get(f"/event_handler/{handler_id}").json()
    assert handler["settings"]["ca_cert"].strip() == authority.pem.strip()
    assert handler["credentials_set"] and "PRIVATE KEY" not in str(handler)


def test_catalogue_and_phone_screen(browser: Browser, console_server: HeraldServer) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        sign_in(page, console_server)
        shot(page, "08-phone-dashboard")
        page.get_by_role("link", name="Catalogue").click()
        page.get_by_label("Search").fill("pdp")
        page.get_by_text("Delete PDP Context", exact=True).wait_for()
        assert "After: Attached: no data session." in page.locator("tbody").inner_text()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 400, "the page scrolls sideways on a phone"
        shot(page, "09-phone-catalogue")
    finally:
        context.close()


def test_rejected_records_are_shown_and_retried(page: Page, console_server: HeraldServer) -> None:
    broken = [
        {"id": "c-1", "event_type": {"id": 3}, "alert": "maybe", "description": "Gate 4"},
        {"id": "c-2", "event_type": "three", "description": "Gate 5"},
        "x" * 100_000,  # over HERALD_QUARANTINE_RECORD_BYTES (64 KiB): kept truncated
    ]
    with console_server.client(console_server.admin_token) as client:
        answer = client.post("/ingest/emnify", params={"organisation": 1}, json=broken).json()
    assert answer["quarantined"] == 3
    sign_in(page, console_server)
    page.get_by_role("link", name="Rejected").click()
    page.get_by_role("heading", name="Rejected records").wait_for()
    page.get_by_text("3 provider records could not be used.").wait_for()
    rows = page.locator("tr.rejected")
    assert rows.count() == 3
    assert "alert: must be true/false or 1/0" in page.locator("table").inner_text()
    shot(page, "10-rejected")

    page.get_by_role("button", name="alert: must be true/false or 1/0").click()
    drawer = page.locator("#drawer")
    drawer.get_by_text('description: "Gate 4"').wait_for()
    shot(page, "11-rejected-record")
    page.keyboard.press("Escape")
    rows.filter(has_text="cannot be retried").locator("button.ghost").click()
    drawer.get_by_text("Too large to keep whole (100002 bytes").wait_for()
    assert drawer.locator("pre").inner_text().startswith('"xxxx')
    page.keyboard.press("Escape")

    rows.filter(has_text="alert:").get_by_role("button", name="Retry").click()
    page.get_by_text(": quarantined.").wait_for()  # still unusable: it keeps its place
    page.get_by_text("3 provider records could not be used.").wait_for()
    assert "2" in page.locator("tr.rejected", has_text="alert:").inner_text()  # attempts


def test_unknown_api_paths_stay_problems(console_server: HeraldServer) -> None:
    response = httpx.get(console_server.url + "/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


# -- issue 29: a tenant's first hour -----------------------------------------------------


class Accepting(BaseHTTPRequestHandler):
    """A webhook receiver that takes every delivery (204)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def accepting() -> Iterator[str]:
    http = HTTPServer(("127.0.0.1", 0), Accepting)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_address[1]}/hook"
    finally:
        http.shutdown()
        http.server_close()


@pytest.fixture(scope="module")
def tenant(console_server: HeraldServer) -> str:
    """A second organisation with an event of its own, and a token of organisation 1 (the
    seeded fleet) that may only read events."""
    with console_server.client(console_server.admin_token) as client:
        if len(client.get("/organisation").json()) < 2:  # "My organisation" (1), made by serve
            assert console_server.create_org("Second Fleet") == 2
            other = {
                "event_type": {"id": 10004},
                "organisation": {"id": 2},
                "description": "Pallet scanned at hub 9",
                "endpoint": {"id": 700, "name": "scanner-700"},
            }
            assert client.post("/event", json=other).status_code == 201
    return console_server.create_token(1, "event:read")


def sign_in_with(page: Page, server: HeraldServer, token: str) -> None:
    page.goto(server.url + "/")
    page.get_by_label("Application token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Dashboard").wait_for()


def full_dashboard(page: Page) -> None:
    """Every panel of the dashboard filled from its answer: no error, nothing still loading."""
    page.locator(".card .n").first.wait_for()
    page.locator("a.tile").first.wait_for()
    page.locator(".chart svg rect").first.wait_for()
    page.get_by_text("Battery critically low").first.wait_for()
    bars = page.locator(".bars")
    bars.nth(2).wait_for()
    page.wait_for_function("!document.querySelector('main').textContent.includes('Loading…')")
    assert page.locator("main .error").count() == 0, page.locator("main .error").all_inner_texts()
    assert page.locator("a.tile").count() == 4
    assert "null" not in page.locator("main").inner_text()
    assert "tracker-" in bars.nth(1).inner_text() and "tracker-" in bars.nth(2).inner_text()
    assert "Update location" in bars.nth(0).inner_text()  # the type's name, not its code alone


def test_a_tenant_with_event_read_sees_a_full_dashboard(
    browser: Browser, console_server: HeraldServer, tenant: str
) -> None:
    """Six panels' requests against HERALD_QUERIES_PER_ORGANISATION = 4, for a token that only
    reads events: five fresh sign-ins in a row, each a full dashboard, none answered 429."""
    refused: list[str] = []

    def note_refusal(response: Response) -> None:
        if response.status == 429:
            refused.append(response.url)

    for attempt in range(5):
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("response", note_refusal)
        try:
            sign_in_with(page, console_server, tenant)
            full_dashboard(page)
            assert page.locator("#org-switch").is_hidden()  # a tenant has one organisation
            assert refused == [], refused
            if attempt == 0:
                shot(page, "15-tenant-dashboard")
        finally:
            context.close()


def test_a_busy_organisation_is_waited_for_not_shown_as_an_error(
    browser: Browser, tmp_path: Path
) -> None:
    """With one query at a time allowed, the console's requests meet 429s: it waits as
    Retry-After says and retries, and the page still fills in without an error."""
    env = {"HERALD_QUERIES_PER_ORGANISATION": "1"}
    server = start_server(tmp_path / "herald", env=env)
    try:
        now = time.time()
        events = [
            {
                "event_type": {"id": 10001},
                "organisation": {"id": 1},
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60 * i)),
                "endpoint": {"id": 1 + i % 3, "name": f"meter-{1 + i % 3}"},
                "alert": True,
                "description": "Battery critically low",
            }
            for i in range(30)
        ]
        with server.client(server.admin_token) as client:
            assert client.post("/event", json=events).status_code == 201
        token = server.create_token(1, "event:read")
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        page = context.new_page()
        page.set_default_timeout(60_000)
        statuses: list[int] = []
        page.on("response", lambda r: statuses.append(r.status) if "/api/v1/" in r.url else None)
        try:
            sign_in_with(page, server, token)
            page.locator(".chart svg rect").first.wait_for()
            page.locator("a.tile").first.wait_for()
            page.get_by_text("Battery critically low").first.wait_for()
            page.wait_for_function(
                "!document.querySelector('main').textContent.includes('Loading…')"
            )
            assert page.locator("main .error").count() == 0, page.locator(
                "main .error"
            ).all_inner_texts()
            assert statuses.count(200) >= 7  # authenticate + six panels
        finally:
            context.close()
    finally:
        server.stop()


def test_event_ids_are_exact(page: Page, console_server: HeraldServer) -> None:
    """A 64-bit id is shown, linked and sent as the server wrote it (not rounded to 2^53)."""
    with console_server.client(console_server.admin_token) as client:
        answer = client.get("/event", params={"type": "5", "per_page": 1})
        newest = answer.json()[0]["id"]  # Python's json keeps every digit
    assert newest > 2**53, "the test needs an id past what a JavaScript number holds"
    sign_in(page, console_server)
    page.goto(f"{console_server.url}/#/events/type%3D5")
    row = page.locator(f'tbody tr[data-id="{newest}"]')
    row.wait_for()
    row.click()
    drawer = page.locator("#drawer")
    drawer.locator(".event-id").wait_for()
    assert drawer.locator(".event-id").inner_text() == f"id {newest}"
    assert f"id: {newest}" in drawer.locator(".tree").inner_text()
    with console_server.client(console_server.admin_token) as client:  # the id as copied
        assert client.get(f"/event/{newest}").status_code == 200


def test_a_late_page_never_replaces_the_current_one(
    page: Page, console_server: HeraldServer
) -> None:
    """The dashboard's answers held back until Events has opened: Events stays."""
    held: list[Any] = []
    page.route("**/api/v1/event/stats**", lambda route: held.append(route))
    sign_in(page, console_server)
    deadline = time.monotonic() + 15
    while not held:
        assert time.monotonic() < deadline, "the dashboard asked for no stats"
        page.wait_for_timeout(50)
    page.get_by_role("link", name="Events").click()
    page.get_by_role("heading", name="Events", exact=True).wait_for()
    page.get_by_text("· page 1 of").wait_for()
    page.unroute("**/api/v1/event/stats**")
    for route in held:
        try:
            route.continue_()
        except PlaywrightError:  # the browser already gave this request up
            pass
    page.get_by_label("Type", exact=True).fill("5")  # a round trip after the late answers
    page.get_by_role("button", name="Apply filters").click()
    page.get_by_text("10 events · page 1 of 1").wait_for()
    assert page.get_by_role("heading", name="Dashboard").count() == 0
    assert page.get_by_role("heading", name="Events", exact=True).is_visible()


def test_filters_live_in_the_address(page: Page, console_server: HeraldServer) -> None:
    sign_in(page, console_server)
    page.get_by_role("link", name="Events").click()
    page.get_by_label("Type", exact=True).fill("5")
    page.get_by_label("Alerts only").check()
    page.get_by_role("button", name="Apply filters").click()
    page.get_by_text("No events match.").wait_for()
    assert "type%3D5%26alert%3Dtrue" in page.url
    page.get_by_label("Alerts only").uncheck()
    page.get_by_role("button", name="Apply filters").click()
    page.get_by_text("10 events · page 1 of 1").wait_for()
    bookmark = page.url
    page.goto(console_server.url + "/#/dashboard")
    page.get_by_role("heading", name="Dashboard").wait_for()
    page.goto(bookmark)
    page.get_by_text("10 events · page 1 of 1").wait_for()
    assert page.get_by_label("Type", exact=True).input_value() == "5"
    page.get_by_role("link", name="Devices").click()
    page.get_by_role("button", name=re.compile(r"^Offline · ")).click()
    page.locator("tr.device").first.wait_for()
    assert "status%3DOFFLINE" in page.url
    page.reload()
    assert (
        page.get_by_role("button", name=re.compile(r"^Offline · ")).get_attribute("aria-pressed")
        == "true"
    )


def test_handlers_are_disabled_enabled_and_deleted(
    page: Page, console_server: HeraldServer, accepting: str
) -> None:
    """A handler whose receiver takes everything: its deliveries are green; the console
    disables, enables and deletes it."""
    with console_server.client(console_server.admin_token) as client:
        body = {"name": "crm webhook", "url": accepting, "organisation_id": 1}
        response = client.post("/event_handler", json=body)
        assert response.status_code == 201, response.text
        handler_id = response.json()["id"]
        ping = {"event_type": {"id": 10002}, "organisation": {"id": 1}}
        assert client.post("/event", json=ping).status_code == 201
        deadline = time.monotonic() + 30
        while not client.get(f"/event_handler/{handler_id}/delivery").json():
            assert time.monotonic() < deadline, "the handler never attempted a delivery"
            time.sleep(0.2)
    sign_in(page, console_server)
    page.goto(f"{console_server.url}/#/handlers/{handler_id}")
    page.get_by_role("heading", name="Delivery log · crm webhook").wait_for()
    outcome = page.locator("tr.delivery .badge").first
    assert outcome.inner_text() == "delivered"
    assert "state-active" in (outcome.get_attribute("class") or "")
    row = page.locator(f'tr.handler[data-id="{handler_id}"]')
    row.get_by_role("button", name="Disable").click()
    page.get_by_text("crm webhook disabled.").wait_for()
    row.get_by_role("button", name="Enable").wait_for()
    with console_server.client(console_server.admin_token) as client:
        assert client.get(f"/event_handler/{handler_id}").json()["enabled"] is False
    row.get_by_role("button", name="Enable").click()
    page.get_by_text("crm webhook enabled.").wait_for()
    row.get_by_role("button", name="Disable").wait_for()
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Delete").click()
    page.get_by_text("crm webhook deleted.").wait_for()
    shot(page, "16-handler-deleted")
    assert row.count() == 0
    with console_server.client(console_server.admin_token) as client:
        assert client.get(f"/event_handler/{handler_id}").status_code == 404


def test_the_platform_console_switches_organisation(
    page: Page, console_server: HeraldServer, tenant: str
) -> None:
    sign_in(page, console_server)
    switch = page.locator("#org")
    switch.wait_for()
    page.get_by_text("Showing all organisations.").wait_for()
    page.get_by_role("link", name="Events").click()
    page.locator("th", has_text="Organisation").wait_for()
    # every organisation's newest events, each row naming its own (the demo fleet's keep
    # coming, so Second Fleet's one event may already be past the first page)
    assert "My organisation (1)" in page.locator("tbody").inner_text()
    switch.select_option("2")
    page.get_by_text("1 event · page 1 of 1").wait_for()
    assert "Pallet scanned at hub 9" in page.locator("tbody").inner_text()
    assert page.locator("th", has_text="Organisation").count() == 0  # one organisation shown
    page.get_by_role("link", name="Dashboard").click()
    page.get_by_text("Showing Second Fleet (2).").wait_for()
    page.locator(".totals .n").first.wait_for()
    assert page.locator(".totals .n").first.inner_text() == "1"  # its events, not everyone's
    page.get_by_role("link", name="Rejected").click()
    page.get_by_text("No rejected records").wait_for()
    assert page.get_by_text("0 provider records").count() == 0
    shot(page, "17-platform-one-organisation")
    switch.select_option("")
    page.get_by_text("Showing all organisations.").wait_for()


def test_an_unknown_device_is_not_said_to_be_ok(page: Page, console_server: HeraldServer) -> None:
    sign_in(page, console_server)
    page.goto(console_server.url + "/#/device/424242")
    page.get_by_text("Herald has no events for endpoint 424242").wait_for()
    assert page.get_by_text("no quota events").count() == 0
    assert page.get_by_role("heading", name="Timeline", exact=True).is_visible()
    page.goto(console_server.url + "/#/device/102")
    page.get_by_role("heading", name="Timeline (10 events)").wait_for()


def test_a_phone_keeps_every_column(browser: Browser, console_server: HeraldServer) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        sign_in(page, console_server)
        page.get_by_role("link", name="Events").click()
        page.locator("tbody tr").first.wait_for()
        headers = page.locator("thead th")
        visible = [headers.nth(i).is_visible() for i in range(headers.count())]
        assert all(visible) and len(visible) >= 5, visible
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 400, "the page scrolls sideways on a phone"  # the table does instead
        shot(page, "18-phone-events")
    finally:
        context.close()


def test_api_docs_work_without_internet(browser: Browser, console_server: HeraldServer) -> None:
    """/api/docs with every request off loopback refused: the page needs none of them."""
    context = browser.new_context()
    outside: list[str] = []

    def loopback_only(route: Any) -> None:
        host = urlsplit(route.request.url).hostname
        if host in ("127.0.0.1", "localhost", "::1"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", loopback_only)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(console_server.url + "/api/docs")
        page.get_by_text("/api/v1/event/stats").first.wait_for()
        page.get_by_role("heading", name="Herald").first.wait_for()
        assert page.locator(".opblock").count() > 30
        shot(page, "19-api-docs-offline")
        assert outside == []
    finally:
        context.close()


def test_rules_their_alerts_and_a_preview(page: Page, console_server: HeraldServer) -> None:
    """An organisation of its own (its alert events stay out of the other tests' log)."""
    org = console_server.create_org("Rules Co")
    token = console_server.create_token(org, "rule:manage", "event:create", "event:read")
    battery = {"event_type": {"id": 10003}, "endpoint": {"id": 7}}
    with console_server.client(token) as client:
        rule = {
            "name": "battery alarms",
            "q": "type:10003",
            "condition": {"kind": "count", "count": 1, "window_seconds": 3600},
        }
        assert client.post("/rule", json=rule).status_code == 201
        assert client.post("/event", json=[battery, battery]).status_code == 201
        deadline = time.monotonic() + 30
        while not client.get("/rule/alert").json():
            assert time.monotonic() < deadline, "the rule never fired"
            time.sleep(0.2)
    sign_in_with(page, console_server, token)
    page.get_by_role("link", name="Rules").click()
    page.get_by_role("heading", name="Alerts firing now").wait_for()
    assert "endpoint 7" in page.locator("tr.alert-row").first.inner_text()
    assert "1 firing" in page.locator("tr.rule").first.inner_text()
    shot(page, "20-rules")

    page.get_by_label("Query (q)").fill("type:10003")
    page.get_by_label("Count", exact=True).fill("1")
    page.get_by_label("Window (s)", exact=True).fill("60")
    page.get_by_label("Hold-down (s)").fill("0")
    page.get_by_role("button", name="Preview").click()
    page.get_by_text("Would have fired 1 time").wait_for()  # two events in one window
    assert "endpoint 7" in page.locator("tr.preview-group").first.inner_text()
    shot(page, "21-rule-preview")
