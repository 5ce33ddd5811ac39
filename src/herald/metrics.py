"""Prometheus metrics of the process: ingest, queries, delivery and refusals.

One registry for the process (not prometheus-client's global one, so nothing else leaks in);
the API serves it at ``/metrics``. Metrics are process-wide by nature, so they live here at
module level and the write path, list path and delivery worker record into them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS_INGESTED = Counter(
    "herald_events_ingested",
    "Events stored by the write path, by provider (a repeat of a stored id is not counted).",
    ["provider"],
    registry=REGISTRY,
)
INGEST_QUARANTINED = Counter(
    "herald_ingest_quarantined",
    "Provider records Herald could not use, newly quarantined, by provider.",
    ["provider"],
    registry=REGISTRY,
)
INGEST_QUARANTINE_FULL = Counter(
    "herald_ingest_quarantine_full",
    "Provider records Herald could not use and did not keep: their organisation's quarantine "
    "was full (HERALD_QUARANTINE_RECORDS / _BYTES), by provider.",
    ["provider"],
    registry=REGISTRY,
)
QUERY_SECONDS = Histogram(
    "herald_query_seconds",
    "Time the store took to answer an event list query.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
RULE_GROUPS_REFUSED = Counter(
    "herald_rule_groups_refused",
    "Groups a rule refused to evaluate: it tracked HERALD_MAX_GROUPS_PER_RULE groups already "
    "(each group counted once until the rule changes).",
    registry=REGISTRY,
)
DELIVERIES = Counter(
    "herald_deliveries",
    "Webhook requests by outcome: delivered, retry, rejected, disabled.",
    ["outcome"],
    registry=REGISTRY,
)
DELIVERY_RETRIES = Counter(
    "herald_delivery_retries",
    "Failed webhook requests that will be tried again.",
    registry=REGISTRY,
)
DELIVERY_FAILURES = Counter(
    "herald_delivery_failures",
    "Webhook requests that did not deliver (retry, rejected or disabled).",
    registry=REGISTRY,
)
DELIVERY_LAG = Gauge(
    "herald_delivery_lag_seconds",
    "Per handler: age of the newest event it has just attempted to deliver.",
    ["handler"],
    registry=REGISTRY,
)
DELIVERY_HANDLERS = Gauge(
    "herald_delivery_handlers",
    "Handlers this process holds the delivery lease of, by where delivery runs (serve, worker).",
    ["mode"],
    registry=REGISTRY,
)
AUTH_FAILURES = Counter(
    "herald_auth_failures",
    "Requests refused for missing, forged, expired or revoked credentials.",
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "herald_rate_limited",
    "Requests answered 429 by the per-token rate limit.",
    registry=REGISTRY,
)
EVENT_BUDGET_REFUSED = Counter(
    "herald_event_budget_refused",
    "Writes refused by their organisation's event budget, by the budget: events_per_second "
    "or bytes_per_day (429, retry later), burst or bytes_per_day with a body that never fits "
    "(422).",
    ["budget"],
    registry=REGISTRY,
)
QUERIES_REFUSED = Counter(
    "herald_queries_refused",
    "Tenants' queries refused: too many of one organisation at once (busy, 429) or stopped "
    "at the time limit (timeout, 422).",
    ["reason"],
    registry=REGISTRY,
)
SERVER_ERRORS = Counter(
    "herald_http_server_errors",
    "Responses with a 5xx status, by status.",
    ["status"],
    registry=REGISTRY,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def render() -> bytes:
    """The registry in Prometheus' text exposition format."""
    return generate_latest(REGISTRY)


@contextmanager
def timed_query() -> Iterator[None]:
    """Observe the duration of the block as one query."""
    started = time.perf_counter()
    try:
        yield
    finally:
        QUERY_SECONDS.observe(time.perf_counter() - started)


def observe_delivery(handler_id: int, outcome: str, newest_received_ms: int) -> None:
    """Record one webhook request of a handler and how far behind the log it is."""
    DELIVERIES.labels(outcome).inc()
    if outcome != "delivered":
        DELIVERY_FAILURES.inc()
    if outcome == "retry":
        DELIVERY_RETRIES.inc()
    lag = max(0.0, time.time() - newest_received_ms / 1000)
    DELIVERY_LAG.labels(str(handler_id)).set(lag)
