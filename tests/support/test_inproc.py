"""The in-process app's lifecycle: it serves the real app, and leaves nothing running."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import httpx
import pytest

from tests.support.inproc import InProcessHerald, start_in_process


def herald_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("herald:")]


def test_it_serves_the_app_with_an_admin_token_and_stops(tmp_path: Path) -> None:
    herald = start_in_process(tmp_path / "herald", env={"HERALD_METRICS_PUBLIC": "true"})
    try:
        assert herald.app.state.services.settings.metrics_public is True  # its env, read
        with herald.client(herald.admin_token) as client:
            assert client.get("/organisation").status_code == 200
    finally:
        herald.stop()
    assert herald_threads() == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{herald.url}/health")


def test_a_restart_serves_a_new_app_over_the_same_database(tmp_path: Path) -> None:
    herald = start_in_process(tmp_path / "herald")
    try:
        organisation = herald.create_org("Acme IoT")
        herald.restart()
        with herald.client(herald.admin_token) as client:  # the token of the first start
            listed = client.get("/organisation").json()
        assert {"id": organisation, "name": "Acme IoT"} in listed
    finally:
        herald.stop()
    assert herald_threads() == []


def test_a_failed_start_raises_and_leaves_no_thread(tmp_path: Path) -> None:
    herald = InProcessHerald(
        workdir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'herald.db'}",
        env={"HERALD_SECRET_KEY": "not a key"},
    )
    with pytest.raises(RuntimeError, match="did not start"):
        herald.start()
    assert herald_threads() == []


def test_its_log_holds_what_the_process_logged_while_it_ran(tmp_path: Path) -> None:
    handlers = list(logging.getLogger().handlers)
    herald = start_in_process(tmp_path / "herald")
    try:
        logging.getLogger("herald.test").warning("while it runs")
    finally:
        herald.stop()
    logging.getLogger("herald.test").warning("after it stopped")
    assert "while it runs" in herald.log()
    assert "after it stopped" not in herald.log()
    assert logging.getLogger().handlers == handlers
