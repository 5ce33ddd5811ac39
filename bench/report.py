"""The figures as a Markdown table in BENCHMARKS.md, and the targets they are held to.

Each table is one run of one commit: the families this run measured in the first, and the
families it kept from earlier runs (``--only``) in tables of their own, one per run, each
headed by its date and commit.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

BEGIN, END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"
FAMILIES = ("ingest", "query", "delivery", "devices", "rules", "sinks")


def _get(results: dict[str, Any], path: str) -> Any:
    value: Any = results
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


# (label, path in results.json, at least / at most, target)
TARGETS: list[tuple[str, str, str, float]] = [
    ("Store ingest vs raw sqlite", "ingest.store.ratio", ">=", 0.5),
    ("HTTP batch ingest, events/s", "ingest.http.batch.events_per_s", ">=", 30_000),
    (
        "CPU per event in serve, HTTP batch ingest, µs",
        "ingest.http.batch.serve_cpu_us_per_event",
        "<=",
        40,
    ),
    (
        "HTTP batch ingest vs raw executemany into a plain table (two indexes)",
        "ingest.http.batch.ratio_to_raw_plain",
        ">=",
        0.5,
    ),
    (
        "Provider ingest (1NCE, batches of 3,000) vs the API's batch rate",
        "ingest.http.provider_1nce.ratio_to_api_batch",
        ">=",
        0.8,
    ),
    (
        "Newest 100 for one endpoint, p99 ms",
        "query.newest_100_for_endpoint.herald.p99_ms",
        "<=",
        10,
    ),
    (
        "30-day count by type per day, p99 ms",
        "query.count_30d_by_type_per_day.herald.p99_ms",
        "<=",
        1000,
    ),
    *(
        (
            f"A neighbour's read p99 while one tenant writes at its budget vs idle, {name}",
            f"ingest.http.neighbour_at_budget.{backend}.p99_ratio_at_budget",
            "<=",
            3,
        )
        for backend, name in (("sqlite", "SQLite"), ("postgres", "PostgreSQL"))
    ),
    ("Webhook delivery (batched) vs raw httpx", "delivery.batched.ratio", ">=", 0.6),
    ("Webhook delivery (single) vs raw httpx", "delivery.single.ratio", ">=", 0.5),
    ("Ingest-to-delivery p99 ms at 1,000/s", "delivery.latency_at_1000_per_s.p99_ms", "<=", 500),
    ("Server peak RSS MB (query store)", "query.server_peak_rss_mb", "<=", 300),
    ("Bytes on disk per event, SQLite (query store)", "query.disk_bytes_per_event", "<=", 300),
    (
        "Store appends into the query store vs into an empty store",
        "query.ingest_at_size.at_size_vs_empty",
        ">=",
        0.8,
    ),
    (
        "Raw executemany into Herald's schema vs a plain table (query store)",
        "query.ingest_at_size.raw_schema_vs_plain",
        ">=",
        0.5,
    ),
    ("Device state lookup for one endpoint, p99 ms", "devices.state_lookup.herald.p99_ms", "<=", 5),
    (
        "Device state's cost to HTTP batch ingest (in a worker)",
        "devices.ingest.worker.cost",
        "<=",
        0.1,
    ),
    ("100 rules' evaluation vs appending the events, time", "rules.ratio", "<=", 0.1),
    (
        "100 rules' evaluation vs HTTP batch ingest, time per event",
        "rules.cost_to_http_batch_ingest",
        "<=",
        0.1,
    ),
    ("MQTT sink (batched) vs raw aiomqtt", "sinks.mqtt.batched.ratio", ">=", 0.5),
    ("NATS sink (batched) vs raw nats-py", "sinks.nats.batched.ratio", ">=", 0.5),
    ("AMQP sink (batched) vs raw aio-pika", "sinks.amqp.batched.ratio", ">=", 0.5),
    ("S3 sink (objects of 100) vs raw aiobotocore", "sinks.s3.batched.ratio", ">=", 0.5),
    *(
        (f"{kind} ingest-to-publish p99 ms at 1,000/s", path, "<=", 500)
        for kind, path in (
            ("MQTT", "sinks.mqtt.latency_at_1000_per_s.p99_ms"),
            ("NATS", "sinks.nats.latency_at_1000_per_s.p99_ms"),
            ("AMQP", "sinks.amqp.latency_at_1000_per_s.p99_ms"),
            ("S3 (to the PUT's 200)", "sinks.s3.latency_at_1000_per_s.p99_ms"),
        )
    ),
    *(
        (
            f"{kind.upper()} events passed unsent at 1,000/s",
            f"sinks.{kind}.latency_at_1000_per_s.unsent_events",
            "<=",
            0,
        )
        for kind in ("mqtt", "nats", "amqp", "s3")
    ),
]
SINK_CLIENTS = {"mqtt": "aiomqtt QoS 1", "nats": "nats-py JetStream", "amqp": "aio-pika confirms"}
SINK_RUNS = (("batched", "batches of 100"), ("single", "one event per message"))


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the families in ``results`` (those it measured: not the ones kept from
    earlier runs) with the measured figure and whether it was met."""
    checked = []
    for label, path, op, bound in TARGETS:
        if not isinstance(results.get(path.split(".", 1)[0]), dict):
            continue  # not measured in this run: its target belongs to the run that did
        value = _get(results, path)
        met = None if value is None else (value >= bound if op == ">=" else value <= bound)
        checked.append({"target": label, "bound": f"{op} {bound:g}", "measured": value, "met": met})
    return checked


def _n(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value < 10:
        return f"{value:.3g}"
    return f"{value:,.0f}" if isinstance(value, int | float) else str(value)


def _run_line(mode: str, date: str, commit: str, names: list[str]) -> str:
    return f"Run: **{mode}** on {date} · commit `{commit}` · families: {', '.join(names)}"


def table(results: dict[str, Any]) -> str:
    """The results section of BENCHMARKS.md: this run's table, then any earlier run's."""
    m = results["machine"]
    names = [name for name in FAMILIES if isinstance(results.get(name), dict)]
    lines = [
        _run_line(results["mode"], results["date"], m["commit"], names)
        + f" · {m['cpu']}, {m['cores']} cores, {m['memory_mb']:,} MB · Python {m['python']}, "
        f"SQLite {m['sqlite']} · {m['os']}",
        "",
        *_figures(results),
        *_target_lines(results["targets"]),
    ]
    earlier = results.get("earlier") or {}
    runs: dict[tuple[str, str], list[str]] = {}
    for name in FAMILIES:
        if name in earlier:
            key = (earlier[name].get("measured", "an unknown date"), earlier[name].get("commit"))
            runs.setdefault(key, []).append(name)
    if runs:
        lines += [
            "",
            "**Earlier runs.** The families this run did not measure (`--only`), as the last "
            f"{results['mode']} run that measured each left them: one table per run, headed by "
            "its date and commit; they were not measured beside the figures above.",
        ]
    for (date, commit), kept in runs.items():
        part = {name: earlier[name] for name in kept}
        lines += [
            "",
            _run_line(results["mode"], date, commit or "unknown (not recorded)", kept),
            "",
            *_figures(part),
            *_target_lines(targets(part)),
        ]
    return "\n".join(lines)


def _target_lines(checked: list[dict[str, Any]]) -> list[str]:
    lines = ["", "| target | bound | measured | met |", "|---|---|---:|---|"]
    for t in checked:
        met = {True: "yes", False: "**no**", None: "not measured"}[t["met"]]
        lines.append(f"| {t['target']} | {t['bound']} | {_n(t['measured'])} | {met} |")
    return lines


def _figures(results: dict[str, Any]) -> list[str]:
    """The figure table of the families in ``results`` (all from one run)."""
    lines = [
        "| figure | Herald | raw baseline | ratio |",
        "|---|---:|---:|---:|",
    ]
    ingest = results.get("ingest") or {}
    if ingest:
        s, h = ingest["store"], ingest["http"]
        lines += [
            f"| ingest through the store (`append`: records packed, hourly counts kept), "
            f"batches of {s['batch']}, events/s | {_n(s['herald_events_per_s'])} | "
            f"{_n(s['raw_sqlite_events_per_s'])} (sqlite3 executemany of the same rows, "
            f"made before its clock; no counts) | {_n(s['ratio'])} |",
            f"| (raw sqlite3 executemany, table without its secondary indexes, events/s) | | "
            f"{_n(s['raw_sqlite_without_indexes_events_per_s'])} | |",
        ]
        if "raw_plain_events_per_s" in s:
            lines.append(
                "| (raw sqlite3 executemany into a plain table indexed on (organisation, ts) and "
                f"(organisation, endpoint, ts), events/s) | | {_n(s['raw_plain_events_per_s'])} | |"
            )
        for key, label in (("batch", "batches of 1000"), ("single", "single events")):
            p = h[key]
            until = (
                "until device state has folded them"
                if "posting_events_per_s" in p
                else "posting only (device state not waited for)"
            )
            lines.append(
                f"| ingest over HTTP, {label} ({p['clients']} clients), {until}, events/s | "
                f"{_n(p['events_per_s'])} | {_n(s['raw_sqlite_events_per_s'])} (the store's "
                f"raw executemany above) | {_n(p['ratio_to_raw_sqlite'])} |"
            )
            if "ratio_to_raw_plain" in p:
                lines.append(
                    f"| (HTTP, {label}: vs the plain table's executemany; serve's CPU per event, "
                    f"µs) | {_n(p['serve_cpu_us_per_event'])} µs | "
                    f"{_n(s['raw_plain_events_per_s'])} | {_n(p['ratio_to_raw_plain'])} |"
                )
            if "posting_events_per_s" in p:
                lines.append(
                    f"| (HTTP, {label}: posting alone, events/s; device state's lag after the "
                    f"last post, s) | {_n(p['posting_events_per_s'])}; "
                    f"{_n(p['lag_after_last_post_s'])} | | |"
                )
        if "provider_1nce" in h:
            p = h["provider_1nce"]
            lines.append(
                f"| provider ingest, 1NCE batches of {p['batch']:,} ({p['clients']} clients), "
                f"until device state has folded them, events/s (serve's CPU per event) | "
                f"{_n(p['events_per_s'])} ({_n(p['serve_cpu_us_per_event'])} µs) | "
                f"{_n(h['batch']['events_per_s'])} (the API's batches above) | "
                f"{_n(p['ratio_to_api_batch'])} |"
            )
        if "neighbour_read" in h:
            alone, busy = h["neighbour_read"]["alone"], h["neighbour_read"]["during_batch_ingest"]
            lines.append(
                "| another tenant's newest-event read while one ingests batches, p50 / p99 ms | "
                f"{_n(busy['p50_ms'])} / {_n(busy['p99_ms'])} | "
                f"{_n(alone['p50_ms'])} / {_n(alone['p99_ms'])} (no ingest) | |"
            )
        for backend, run in (h.get("neighbour_at_budget") or {}).items():
            if isinstance(run, dict):
                idle, loaded = run["idle"], run["at_budget"]
                lines.append(
                    f"| another tenant's newest-event read while one writes at its event budget "
                    f"({backend}), p50 / p99 ms | {_n(loaded['p50_ms'])} / "
                    f"{_n(loaded['p99_ms'])} | {_n(idle['p50_ms'])} / {_n(idle['p99_ms'])} "
                    f"(idle, same server) | {_n(run['p99_ratio_at_budget'])} (p99) |"
                )
    query = results.get("query") or {}
    names = {
        "newest_100_for_endpoint": "newest 100 for one endpoint",
        "tenant_day_by_type": "one tenant's day filtered by type",
        "page_50_filtered": "page 50 of a filtered list",
        "cursor_walk_page": "a cursor walk, per page",
        "count_30d_by_type_per_day": "30-day count by type per day",
    }
    for key, label in names.items():
        if key in query:
            f = query[key]
            # results from before the baselines said what they do: raw rows, a scan
            does = f.get("raw_does") or (
                "sqlite3 scan of the events, not the rollup"
                if key == "count_30d_by_type_per_day"
                else "sqlite3, records left packed"
            )
            lines.append(
                f"| query on {query['store_events']:,} events: {label}, p50 / p99 ms | "
                f"{_n(f['herald']['p50_ms'])} / {_n(f['herald']['p99_ms'])} | "
                f"{_n(f['raw_sqlite']['p50_ms'])} / {_n(f['raw_sqlite']['p99_ms'])} ({does}) | "
                f"{_n(f['ratio_p50'])} (p50) |"
            )
            if "raw_sqlite_events_scan" in f:
                scan = f["raw_sqlite_events_scan"]
                lines.append(
                    f"| ({label} without the rollup: sqlite3 scanning the events, p50 / p99 ms) "
                    f"| | {_n(scan['p50_ms'])} / {_n(scan['p99_ms'])} | |"
                )
    delivery = results.get("delivery") or {}
    if delivery:
        for key, label in (("batched", "batches of 100"), ("single", "one event per request")):
            d = delivery[key]
            lines.append(
                f"| webhook delivery, {label}, events/s | {_n(d['herald_events_per_s'])} | "
                f"{_n(d['raw_httpx_events_per_s'])} (httpx loop) | {_n(d['ratio'])} |"
            )
        lat = delivery["latency_at_1000_per_s"]
        lines.append(
            f"| ingest-to-delivery at {_n(lat['offered_events_per_s'])} events/s, p50 / p99 ms | "
            f"{_n(lat['p50_ms'])} / {_n(lat['p99_ms'])} | | |"
        )
    lines += _device_lines(results.get("devices") or {})
    lines += _rule_lines(results.get("rules") or {})
    lines += _sink_lines(results.get("sinks") or {})
    cost = []
    if query:
        cost.append(f"| bytes on disk per event | {_n(query['disk_bytes_per_event'])} | | |")
        cost.append(f"| server peak RSS, query run, MB | {_n(query['server_peak_rss_mb'])} | | |")
    if delivery:
        cost.append(
            f"| server / worker peak RSS, delivery run, MB | "
            f"{_n(delivery['server_peak_rss_mb'])} / {_n(delivery['worker_peak_rss_mb'])} | | |"
        )
    lines += cost
    return lines


def _sink_lines(sinks: dict[str, Any]) -> list[str]:
    lines = []
    for kind, client in SINK_CLIENTS.items():
        family = sinks.get(kind) or {}
        for key, label in SINK_RUNS:
            if key in family:
                d = family[key]
                lines.append(
                    f"| {kind} sink, {label}, events/s | {_n(d['herald_events_per_s'])} | "
                    f"{_n(d['raw_client_events_per_s'])} ({client} loop) | {_n(d['ratio'])} |"
                )
    s3 = sinks.get("s3") or {}
    for key, label in (("batched", "objects of 100 events"), ("batch_1000", "of 1000 events")):
        if key in s3:
            d = s3[key]
            lines += [
                f"| s3 sink (moto), {label}, events/s (without the first PUT, which creates "
                f"the client: {_n(d['first_attempt_ms'])} ms) | {_n(d['herald_events_per_s'])} "
                f"({_n(d['herald_warm_events_per_s'])}) | {_n(d['raw_client_events_per_s'])} "
                f"(aiobotocore put_object loop) | {_n(d['ratio'])} ({_n(d['ratio_warm'])}) |",
                f"| (s3, {label}: moto's CPU while sending, in cores; gzip per object, ms) | "
                f"{_n(d['store_cpu_per_herald_s'])} | {_n(d['store_cpu_per_raw_s'])} | "
                f"{_n(d['pack_ms_per_message'])} |",
            ]
    for kind in (*SINK_CLIENTS, "s3"):
        lat = (sinks.get(kind) or {}).get("latency_at_1000_per_s")
        if lat:
            to = "the store's 200" if kind == "s3" else "a subscriber"
            lost, unsent = lat.get("lost_events"), lat.get("unsent_events", 0)
            never = (
                f" (**{lost:,} of {lat['samples'] + lost:,} never arrived, {unsent:,} of them "
                f"never sent**)"
                if lost
                else ""
            )
            lines.append(
                f"| {kind} sink: ingest to {to} at {_n(lat['offered_events_per_s'])} events/s "
                f"(batches of up to 100, no wait), p50 / p99 ms{never} | "
                f"{_n(lat['p50_ms'])} / {_n(lat['p99_ms'])} | | |"
            )
    return lines


def _rule_lines(rules: dict[str, Any]) -> list[str]:
    if not rules:
        return []
    where = f"{rules['rules']} rules, {rules['events']:,} events, {rules['endpoints']:,} endpoints"
    lines = [
        f"| rules ({where}): evaluating vs appending, events/s | "
        f"{_n(rules['evaluate_events_per_s'])} | {_n(rules['append_events_per_s'])} "
        f"(store append, batches of 1000) | {_n(rules['ratio'])} (time) |"
    ]
    if "cost_to_http_batch_ingest" in rules:
        lines.append(
            f"| rules: evaluating vs HTTP batch ingest of this run, time per event | | "
            f"{_n(rules['http_batch_events_per_s'])} events/s | "
            f"{_n(rules['cost_to_http_batch_ingest'])} |"
        )
    return lines


def _device_lines(devices: dict[str, Any]) -> list[str]:
    if not devices:
        return []
    i = devices["ingest"]
    lines = []
    for place in ("serve", "worker"):
        p = i[place]
        lines += [
            f"| ingest over HTTP, batches of 1000, device state kept in {place} (until folded) "
            f"vs none, events/s | {_n(p['folded_events_per_s'])} | "
            f"{_n(i['off_events_per_s'])} (no device state) | {_n(1 - p['cost'])} |",
            f"| (kept in {place}: posting alone, events/s; lag after the last post, s) | "
            f"{_n(p['events_per_s'])}; {_n(p['lag_after_last_post_s'])} | | |",
        ]
    where = f"{devices['store_events']:,} events, {devices['endpoints']:,} endpoints"
    names = {
        "state_lookup": "one endpoint's state",
        "fleet_by_status": "fleet list by status, 100 a page",
        "status_counts": "counts per status",
    }
    for key, label in names.items():
        f = devices[key]
        lines.append(
            f"| device state on {where}: {label}, p50 / p99 ms | "
            f"{_n(f['herald']['p50_ms'])} / {_n(f['herald']['p99_ms'])} | "
            f"{_n(f['raw_sqlite']['p50_ms'])} / {_n(f['raw_sqlite']['p99_ms'])} (sqlite3) | "
            f"{_n(f['ratio_p50'])} (p50) |"
        )
    if "fold_events_per_s" in devices:
        lines.append(
            f"| folding the log into device states (a rebuild), events/s | "
            f"{_n(devices['fold_events_per_s'])} | | |"
        )
    return lines


def update_markdown(path: Path, results: dict[str, Any]) -> None:
    """Replace the results section of ``path`` (between the markers) with the new table."""
    text = path.read_text() if path.exists() else ""
    section = f"{BEGIN}\n{table(results)}\n{END}"
    if BEGIN in text:
        text = re.sub(
            re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: section, text, flags=re.S
        )
    else:
        text += "\n" + section + "\n"
    path.write_text(text)
