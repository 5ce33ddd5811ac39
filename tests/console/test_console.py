"""The web console end to end: a real ``herald serve`` driven by the system's headless Chromium.

Each step saves a screenshot under ``test-artifacts/console/`` for a human to look at.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

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
    assert page.locator(".chart svg rect").count() > 0
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
    page.get_by_text("1 devices · page 1 of 1").wait_for()
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
    page.get_by_text("1 devices · page 1 of 1").wait_for()
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
    ]
    with console_server.client(console_server.admin_token) as client:
        answer = client.post("/ingest/emnify", params={"organisation": 1}, json=broken).json()
    assert answer["quarantined"] == 2
    sign_in(page, console_server)
    page.get_by_role("link", name="Rejected").click()
    page.get_by_role("heading", name="Rejected records").wait_for()
    page.get_by_text("2 provider records could not be used.").wait_for()
    rows = page.locator("tr.rejected")
    assert rows.count() == 2
    assert "alert: must be true/false or 1/0" in page.locator("table").inner_text()
    shot(page, "10-rejected")

    page.get_by_role("button", name="alert: must be true/false or 1/0").click()
    drawer = page.locator("#drawer")
    drawer.get_by_text('description: "Gate 4"').wait_for()
    shot(page, "11-rejected-record")
    page.keyboard.press("Escape")

    rows.filter(has_text="alert:").get_by_role("button", name="Retry").click()
    page.get_by_text(": quarantined.").wait_for()  # still unusable: it keeps its place
    page.get_by_text("2 provider records could not be used.").wait_for()
    assert "2" in page.locator("tr.rejected", has_text="alert:").inner_text()  # attempts


def test_unknown_api_paths_stay_problems(console_server: HeraldServer) -> None:
    response = httpx.get(console_server.url + "/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
