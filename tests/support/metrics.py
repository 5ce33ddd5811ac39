"""A server's ``/metrics``, parsed: tests check what counters count, not only that they exist."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.herald import Herald


def scrape(server: Herald) -> dict[str, float]:
    """Every sample of ``server``'s ``/metrics`` (read with its internal admin token), by
    name and labels as Prometheus writes them: ``herald_queries_refused_total{reason="busy"}``,
    ``herald_rate_limited_total``."""
    reply = httpx.get(
        f"{server.url}/metrics",
        headers={"Authorization": f"Bearer {server.admin_token}"},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            labels = ",".join(f'{name}="{value}"' for name, value in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def value(server: Herald, sample: str) -> float:
    """One sample of ``scrape(server)``; 0 for a labelled series not yet counted."""
    return scrape(server).get(sample, 0.0)


def increase(server: Herald, before: dict[str, float], sample: str) -> float:
    """How much ``sample`` grew since ``before`` (a ``scrape``). An app served in the test's
    process counts into the process's metrics, shared with the apps it ran before."""
    return value(server, sample) - before.get(sample, 0.0)
