"""Dates a few days back, for tests that write events with a timestamp of their own.

Events older than their organisation's retention window (30 days by default) are refused,
so a fixed date in a test would stop working some day: these move with the calendar.
``D2`` is the UTC date two days ago (``"2026-11-28"``), and so on; a time of day with any
zone offset on such a date is in the past and within the window.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def days_ago(days: int) -> str:
    """The UTC date ``days`` days ago, as ``YYYY-MM-DD``."""
    return (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%d")


D2, D3, D4, D5, D6 = (days_ago(n) for n in range(2, 7))
