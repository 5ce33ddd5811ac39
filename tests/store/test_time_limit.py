"""A tenant's query has a time limit on both backends: past it the database stops the query
(SQLite's progress handler, PostgreSQL's statement_timeout) and the store raises QueryTimeout."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from herald.events.types import EventQuery
from herald.query.filter import EventFilter
from herald.rules.types import Condition, RuleSpec
from herald.store import QueryTimeout, Store
from tests.store.conftest import EventFactory

Ids = Callable[[int], list[int]]
EVENTS = 20_000
# Twenty substrings no record holds: each one a case-insensitive LIKE over every row scanned.
MISSING = tuple(f"no-such-text-{n}" for n in range(20))


@pytest.fixture
def filled(store: Store, make_event: EventFactory, ids: Ids) -> Store:
    for start in range(0, EVENTS, 1000):
        batch = [make_event(1, description=f"PDP Context {start + n}") for n in range(1000)]
        store.log.append(batch, ids(len(batch)))
    return store


def test_a_scan_past_its_time_limit_is_stopped(filled: Store) -> None:
    scan = EventQuery(EventFilter((1,), description=MISSING), time_limit=0.001)
    with pytest.raises(QueryTimeout, match=r"longer than 0\.001 s"):
        filled.log.query(scan)


def test_the_store_answers_as_before_after_a_stopped_query(filled: Store) -> None:
    with pytest.raises(QueryTimeout):
        filled.log.query(EventQuery(EventFilter((1,), description=MISSING), time_limit=0.001))
    # The same scan without a limit (the CLI's), and a bounded one well within its limit,
    # on the connections the stopped query gave back.
    assert filled.log.query(EventQuery(EventFilter((1,), description=MISSING))).total == 0
    page = filled.log.query(EventQuery(EventFilter((1,)), per_page=10, time_limit=30))
    assert len(page.items) == 10 and page.total == EVENTS


def test_seeding_an_absence_rule_from_the_log_is_a_query_with_its_time_limit(
    filled: Store,
) -> None:
    """A filtered absence per endpoint reads the log to seed its groups: a tenant's query,
    stopped past its time limit, and then no rule is made."""
    q = "description:" + "|".join(MISSING)
    spec = RuleSpec("silent", q, "endpoint", Condition("absence", 3_600_000))
    with pytest.raises(QueryTimeout):
        filled.rules.create(1, spec, time_limit=0.001)
    assert filled.rules.list_rules((1,)) == []
    made = filled.rules.create(1, spec, time_limit=30)
    assert filled.rules.list_rules((1,)) == [made]
