"""1NCE's management API shapes: a served record as 1NCE's ``SIM_Event``, a day's usage as
its ``Daily`` record, with the day's cost summed from the usage records that carry one."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from herald.devices import usage
from herald.ingest.usage import UNITS_PER_MB
from herald.store.usage_records import DATA, SMS


def nested(record: dict[str, Any], key: str) -> dict[str, Any]:
    """``record[key]`` when it is an object, else an empty one."""
    value = record.get(key)
    return value if isinstance(value, dict) else {}


def as_text(value: object) -> str | None:
    """A text or a whole number as text (1NCE writes ids as text); None otherwise."""
    return value if isinstance(value, str) else str(value) if isinstance(value, int) else None


def onece_time(timestamp: object) -> str:
    """Herald's ``2026-11-20T10:00:00.000Z`` as 1NCE writes it: ``...000+0000``."""
    text = str(timestamp or "")
    return text[:-1] + "+0000" if text.endswith("Z") else text


def sim_event(record: dict[str, Any]) -> dict[str, Any]:
    """A served record as 1NCE's ``SIM_Event``."""
    detail = nested(record, "detail")
    country = nested(detail, "country")
    pdp = nested(detail, "pdp_context")
    mnc = pdp.get("mnc")
    mncs = detail.get("mnc")  # a location's: a list of {id, mnc}
    if mnc is None and isinstance(mncs, list) and mncs and isinstance(mncs[0], dict):
        mnc = mncs[0].get("mnc")
    return {
        "timestamp": onece_time(record.get("timestamp")),
        "event_type": str(nested(record, "event_type").get("description") or ""),
        "iccid": as_text(nested(record, "sim").get("iccid")),
        "imei": as_text(nested(record, "endpoint").get("imei")),
        "imsi": as_text(nested(record, "imsi").get("imsi")),
        "country": as_text(country.get("name")),
        "operator": as_text(detail.get("name")) if country or pdp else None,
        "mcc": as_text(country.get("mcc") or pdp.get("mcc")),
        "mnc": as_text(mnc),
        "alert": bool(record.get("alert")),
        "event_severity": str(nested(record, "event_severity").get("description") or ""),
    }


def _decimal(units: int, scale: int) -> str:
    """``units`` millionths (``scale`` 10**6) as 1NCE's text with 6 decimals, exactly."""
    if scale == 1:
        return str(units)
    return f"{units // scale}.{units % scale:06d}"


MAX_COST_RECORDS = 20_000
"""Usage records a usage answer reads for costs; past it, the older days' cost is null."""
_MAX_COST_TEXT = 40
Cost = tuple[str, dict[str, Any]]


def _cost(value: object) -> Decimal | None:
    """A record's ``cost`` (text or number, up to 10 decimals) as a Decimal; None if absent
    or not a plain bounded amount."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    text = value if isinstance(value, str) else str(value)
    if len(text) > _MAX_COST_TEXT:
        return None
    try:
        amount = Decimal(text)
    except InvalidOperation:
        return None
    exponent = amount.as_tuple().exponent
    if not amount.is_finite() or not isinstance(exponent, int) or exponent < -12:
        return None
    return amount if abs(amount) < 10**15 else None


def day_costs(rows: list[tuple[int, int, bytes]], limit: int) -> dict[tuple[int, int], Cost]:
    """(day, traffic type) -> (summed cost, currency) of usage records (``rows`` newest day
    first, as ``usage_day_records`` gives them): only where each record of the day and type
    carries a cost in the same currency. A read cut at ``limit`` rows leaves its oldest day
    out (some of its records were not read)."""
    if len(rows) >= limit:
        oldest = rows[-1][0]
        rows = [row for row in rows if row[0] != oldest]
    sums: dict[tuple[int, int], tuple[Decimal, Any] | None] = {}
    for day, traffic_type, body in rows:
        key = (day, traffic_type)
        if key in sums and sums[key] is None:
            continue
        try:
            record = orjson.loads(body)
        except orjson.JSONDecodeError:
            record = None
        amount = _cost(record.get("cost")) if isinstance(record, dict) else None
        currency = record.get("currency") if isinstance(record, dict) else None
        held = sums.get(key, (Decimal(0), currency))
        if amount is None or not isinstance(currency, dict) or held is None:
            sums[key] = None
        elif held[1] != currency:
            sums[key] = None
        else:
            sums[key] = (held[0] + amount, currency)
    return {
        key: (format(total, "f"), currency)
        for key, held in sums.items()
        if held is not None
        for total, currency in (held,)
    }


def usage_entry(
    day: usage.DayUsage, costs: dict[tuple[int, int], Cost] | None = None
) -> dict[str, Any]:
    """One day as 1NCE's ``Daily`` usage record (``costs``: ``day_costs``)."""
    costs = costs or {}
    data_cost = costs.get((day.day, DATA), (None, None))
    sms_cost = costs.get((day.day, SMS), (None, None))
    data = {
        "volume": _decimal(day.data_total, UNITS_PER_MB),
        "volume_rx": _decimal(day.data_rx, UNITS_PER_MB),
        "volume_tx": _decimal(day.data_tx, UNITS_PER_MB),
        "traffic_type": usage.TRAFFIC_TYPES[DATA],
        "cost": data_cost[0],
        "currency": data_cost[1],
    }
    sms = {  # 1NCE: volume_rx is the MO count, volume_tx the MT count
        "volume": str(day.sms_total),
        "volume_rx": str(day.sms_mo),
        "volume_tx": str(day.sms_mt),
        "traffic_type": usage.TRAFFIC_TYPES[SMS],
        "cost": sms_cost[0],
        "currency": sms_cost[1],
    }
    return {"date": usage.iso_day(day.day) + "T00:00:00.000Z", "data": data, "sms": sms}
