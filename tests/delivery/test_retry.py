"""The retry policy, without a clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from herald.delivery.retry import DEFAULT_SCHEDULE, RetryPolicy, is_retryable, parse_retry_after

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
EXACT = RetryPolicy(schedule=(1.0, 10.0, 100.0), jitter=0)


def test_backoff_follows_the_schedule_and_repeats_its_last_step() -> None:
    delays = [(EXACT.next_attempt(n, NOW) or NOW) - NOW for n in (1, 2, 3, 4, 9)]
    assert [d.total_seconds() for d in delays] == [1, 10, 100, 100, 100]


def test_default_schedule_reaches_about_a_day() -> None:
    assert DEFAULT_SCHEDULE[-1] == 86_400 and sum(DEFAULT_SCHEDULE) > 86_400


def test_jitter_stays_within_its_fraction() -> None:
    policy = RetryPolicy(schedule=(100.0,), jitter=0.1)
    low = policy.next_attempt(1, NOW, rand=lambda: 0.0)
    high = policy.next_attempt(1, NOW, rand=lambda: 1.0)
    assert low == NOW + timedelta(seconds=90) and high == NOW + timedelta(seconds=110)


def test_retry_after_is_honoured_but_bounded() -> None:
    assert EXACT.next_attempt(1, NOW, retry_after=30) == NOW + timedelta(seconds=30)
    assert EXACT.next_attempt(3, NOW, retry_after=30) == NOW + timedelta(seconds=100)
    assert EXACT.next_attempt(1, NOW, retry_after=10**9) == NOW + timedelta(days=1)


def test_gives_up_after_the_retention() -> None:
    retention = timedelta(days=3)
    young = NOW - timedelta(days=2)
    old = NOW - timedelta(days=3)
    assert EXACT.next_attempt(5, NOW, failing_since=young, retention=retention) is not None
    assert EXACT.next_attempt(5, NOW, failing_since=old, retention=retention) is None


def test_which_answers_are_retried() -> None:
    assert [is_retryable(s) for s in (408, 429, 500, 503)] == [True] * 4
    assert [is_retryable(s) for s in (301, 400, 401, 404, 410)] == [False] * 5


def test_retry_after_forms() -> None:
    assert parse_retry_after("120", NOW) == 120
    assert parse_retry_after("Mon, 23 Nov 2026 12:01:00 GMT", NOW) == 60
    assert parse_retry_after("soon", NOW) is None and parse_retry_after(None, NOW) is None
