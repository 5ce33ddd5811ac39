"""EventBudgets: each organisation's events per second (with a burst) and bytes per UTC day."""

from __future__ import annotations

import pytest

from herald.api.problems import Problem, problem_for
from herald.errors import DomainError
from herald.organisations.budget import DAY_SECONDS, Budget, EventBudgets
from herald.organisations.types import Organisation

DEFAULT = Budget(events_per_second=10, burst=100, bytes_per_day=10_000)


class Clock:
    """Monotonic and wall seconds the test moves by hand."""

    def __init__(self, wall: float) -> None:
        self.now = 0.0
        self.wall = wall

    def pass_(self, seconds: float) -> None:
        self.now += seconds
        self.wall += seconds


def _budgets(clock: Clock, default: Budget = DEFAULT) -> EventBudgets:
    return EventBudgets(default, monotonic=lambda: clock.now, wall=lambda: clock.wall)


def _refused(budgets: EventBudgets, events: int, size: int = 0, org: int = 1) -> Problem:
    with pytest.raises(DomainError) as refused:
        budgets.charge(org, DEFAULT, events, size)
    return problem_for(refused.value)


def test_events_over_the_bucket_answer_429_with_the_wait_and_refill_at_the_rate() -> None:
    clock = Clock(wall=5 * DAY_SECONDS)
    budgets = _budgets(clock)
    budgets.charge(1, DEFAULT, 60, 0)
    budgets.charge(1, DEFAULT, 40, 0)  # the burst, all at once
    problem = _refused(budgets, 25)
    assert problem.status == 429
    assert problem.headers == {"Retry-After": "3"}  # 25 events at 10/s
    assert problem.errors[0]["field"] == "event_budget.events_per_second"
    assert "10 events per second (burst 100)" in problem.errors[0]["reason"]
    budgets.charge(2, DEFAULT, 100, 0)  # another organisation has its own bucket
    clock.pass_(2.5)
    budgets.charge(1, DEFAULT, 25, 0)  # refilled at 10 per second; the refusal took none
    assert _refused(budgets, 1).status == 429


def test_a_batch_larger_than_the_burst_is_refused_whole_with_422() -> None:
    budgets = _budgets(Clock(wall=0))
    problem = _refused(budgets, 101)
    assert problem.status == 422 and not problem.headers
    assert problem.errors == [
        {
            "field": "event_budget.burst",
            "reason": "a batch of 101 events is more than this organisation's burst of 100 "
            "events: send smaller batches",
        }
    ]
    budgets.charge(1, DEFAULT, 100, 0)  # nothing was taken


def test_the_days_bytes_run_out_until_the_next_utc_day() -> None:
    clock = Clock(wall=7 * DAY_SECONDS + DAY_SECONDS - 100)  # 100 s before midnight
    budgets = _budgets(clock)
    budgets.charge(1, DEFAULT, 1, 9_000)
    problem = _refused(budgets, 1, 1_001)
    assert problem.status == 429
    assert problem.headers == {"Retry-After": "100"}
    assert problem.errors[0]["field"] == "event_budget.bytes_per_day"
    budgets.charge(1, DEFAULT, 1, 1_000)  # what is left still fits
    assert _refused(budgets, 1, 1).status == 429
    assert _refused(budgets, 1, 10_001).status == 422  # never fits a day
    clock.pass_(100)
    budgets.charge(1, DEFAULT, 1, 10_000)  # a new day


def test_an_organisations_own_settings_replace_the_defaults_one_by_one() -> None:
    budgets = _budgets(Clock(wall=0))
    assert budgets.budget(None) == DEFAULT
    plain = Organisation(1, "Plain", 0)
    assert budgets.budget(plain) == DEFAULT
    own = Organisation(2, "Own", 0, events_per_second=0.5, event_burst=None, bytes_per_day=7)
    assert budgets.budget(own) == Budget(0.5, 100, 7)


def test_no_rate_turns_the_budget_off() -> None:
    off = Budget(events_per_second=0, burst=1, bytes_per_day=1)
    budgets = _budgets(Clock(wall=0), off)
    budgets.charge(1, off, 10_000, 10**9)


def test_a_write_inside_the_wait_of_the_last_refusal_is_refused_before_it_is_read() -> None:
    clock = Clock(wall=0)
    budgets = _budgets(clock)
    budgets.check_waited(1)  # nothing refused yet
    budgets.charge(1, DEFAULT, 100, 0)
    assert _refused(budgets, 50).headers == {"Retry-After": "5"}
    clock.pass_(4)
    with pytest.raises(DomainError) as refused_early:
        budgets.check_waited(1)  # a client that did not wait: refused unread
    early = problem_for(refused_early.value)
    assert early.status == 429 and early.headers == {"Retry-After": "1"}
    assert early.errors[0]["field"] == "event_budget.events_per_second"
    budgets.check_waited(2)  # another organisation's writes are not held
    clock.pass_(1)
    budgets.check_waited(1)  # the wait is over
    budgets.charge(1, DEFAULT, 50, 0)
