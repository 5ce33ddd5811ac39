"""A device's connectivity state, folded from its events: pure functions, no I/O.

The state is a set of *facts*, each kept with the time of the newest event that gave it
(``times``: "attached to the CS domain at t", "session closed at t"...), and a few values
kept with the clock of the event that set them (``registers``: the network, the open
session's parameters). ``apply`` takes the newer of each, so folding the same events in any
order, or twice, gives the same state: a backfilled older event never moves the status back,
and replaying the log rebuilds the state exactly. The status is derived from the facts:

- **BLOCKED** (3): a block (Endpoint blocked or disabled, Quota used up or expired, SIM
  suspended or deleted) newer than what lifts it (Endpoint enabled, Data quota assigned,
  SIM activation) and than the last accepted data session;
- **ONLINE** (1): a data session (Create or Update PDP Context) newer than its end (Delete
  PDP Context) and than any purge;
- **ATTACHED** (0): a location update (CS or PS domain) newer than the purge of its domain;
- **OFFLINE** (2): never attached, or purged since (Purge location).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson

from herald.timefmt import format_ms, parse_timestamp, to_ms

JSON = Any
MAX_TEXT = 256  # a tenant's strings kept in the state are cut to this length
MAX_KEY = 256  # longest endpoint name used as a key (as /endpoint/{id} paths allow)


class Status(enum.IntEnum):
    """emnify's connectivity statuses."""

    ATTACHED = 0
    ONLINE = 1
    OFFLINE = 2
    BLOCKED = 3


# Facts: the newest time each was seen. "ps" is the packet-switched (data) domain, "cs" the
# circuit-switched one (SMS); Purge location takes both, Purge GPRS location only "ps".
CS_ATTACH, PS_ATTACH, DETACH, PS_DETACH = "cs_attach", "ps_attach", "detach", "ps_detach"
SESSION_OPEN, SESSION_CLOSE = "session_open", "session_close"
BLOCK_CAUSES = ("endpoint", "sim", "quota")

_FACTS: dict[int, tuple[str, ...]] = {
    1: (CS_ATTACH,),  # Update location
    2: (PS_ATTACH,),  # Update GPRS location
    4: (SESSION_OPEN,),  # Update PDP Context: the session goes on
    5: (SESSION_CLOSE,),  # Delete PDP Context
    15: (DETACH,),  # Purge location
    16: (PS_DETACH,),  # Purge GPRS location
    49: (DETACH,),  # Device offline
    8: ("clear:sim",),  # SIM activation
    9: ("block:sim",),  # SIM suspension
    10: ("block:sim",),  # SIM deletion
    11: ("block:endpoint",),  # Endpoint blocked
    42: ("clear:endpoint",),  # Endpoint enabled
    43: ("block:endpoint",),  # Endpoint disabled
    19: ("block:quota",),  # Quota used up
    60: ("block:quota",),  # Data quota expired
    56: ("clear:quota",),  # Data quota assigned
    1001: (DETACH,),  # Stacuity: forcibly detached
    1006: (PS_ATTACH,),  # Stacuity: steered to a network
    1012: (SESSION_OPEN,),  # Stacuity: data session extended
    1013: (SESSION_CLOSE,),  # Stacuity: data session forcibly ended
    1014: (PS_ATTACH,),  # Stacuity: network status active
    1015: (DETACH,),  # Stacuity: network status detached
    1016: (PS_ATTACH,),  # Stacuity: network status idle
    1022: (PS_ATTACH,),  # Stacuity: serving operator changed
}
# Registers set by the type alone: the SIM's state and the data quota's.
_LABELS: dict[int, tuple[str, str]] = {
    8: ("sim", "ACTIVATED"),
    9: ("sim", "SUSPENDED"),
    10: ("sim", "DELETED"),
    44: ("sim", "ISSUED"),
    45: ("sim", "FACTORY_TEST"),
    18: ("quota", "THRESHOLD_REACHED"),
    19: ("quota", "EXHAUSTED"),
    56: ("quota", "ACTIVE"),
    57: ("quota", "DELETED"),
    60: ("quota", "EXPIRED"),
}
CREATE_PDP_CONTEXT = 3
_LOCATION_TYPES = frozenset({1, 2, CREATE_PDP_CONTEXT})
_SESSION_TYPES = frozenset({CREATE_PDP_CONTEXT, 4})
DETAIL_TYPES = _LOCATION_TYPES | _SESSION_TYPES  # the types whose detail the state keeps
_POLICY_CONTROL, _WARN = 1, 1
_ELEMENT = {  # the network element serving the device, named in the description
    1: ("vlr", re.compile(r"VLR='([^']{1,64})'")),
    2: ("sgsn", re.compile(r"SGSN='([^']{1,64})'")),
}
# The session parameters kept from ``detail.pdp_context`` (scalars only, text cut short).
_SESSION_FIELDS = frozenset(
    {
        "pdp_context_id",
        "tunnel_created",
        "gtp_version",
        "apn",
        "rat_type",
        "ue_ip_address",
        "imsi",
        "mcc",
        "mnc",
        "lac",
        "ci",
        "sac",
        "rac",
        "region",
        "breakout_ip",
        "operator_id",
        "ratezone_id",
        "tariff_id",
        "tariff_profile_id",
        "imeisv",
        "nsapi",
        "ggsn_control_plane_ip_address",
        "ggsn_data_plane_ip_address",
        "sgsn_control_plane_ip_address",
        "sgsn_data_plane_ip_address",
    }
)
_COUNTRY_FIELDS = frozenset({"id", "name", "country_code", "mcc", "iso_code"})
_ENDPOINT_FIELDS = frozenset({"id", "name", "imei", "ip_address", "tags"})
# Each of the endpoint's fields is a register of its own: an event that names the endpoint
# by id only leaves its known name (IMEI, address...) as it was.
ENDPOINT_REGISTERS = {key: f"endpoint.{key}" for key in sorted(_ENDPOINT_FIELDS)}
_OPERATOR_FIELDS, _MNC_FIELDS = frozenset({"id", "name"}), frozenset({"mnc"})
_SCALARS = frozenset({str, bool, int, float, type(None)})  # JSON's, as parsed
_KNOWN = _SCALARS - {type(None)}


Register = tuple[int, int, JSON]
"""A value with the clock of the event that set it: (time in ms, event id, value)."""


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """What the state needs of one stored event."""

    event_id: int
    type_id: int
    timestamp_ms: int
    record: Mapping[str, JSON]


class DeviceState(msgspec.Struct, frozen=True):
    """The facts and values known about one endpoint (treat as immutable; a Struct: the
    fold makes one per endpoint it changes)."""

    last_event_ms: int = 0
    times: Mapping[str, int] = msgspec.field(default_factory=dict)
    registers: Mapping[str, Register] = msgspec.field(default_factory=dict)


def device_event(
    event_id: int, type_id: int, body: bytes | Mapping[str, JSON], timestamp_ms: int | None = None
) -> DeviceEvent | None:
    """The event of a stored record, as bytes or parsed (``timestamp_ms``: its timestamp,
    if known already), or None if its timestamp cannot be read."""
    record = orjson.loads(body) if isinstance(body, bytes) else body
    if not isinstance(record, dict):
        return None
    ms = timestamp_ms if timestamp_ms is not None else record_ms(record)
    return DeviceEvent(event_id, type_id, ms, record) if ms is not None else None


def record_ms(record: Mapping[str, JSON]) -> int | None:
    """A record's ``timestamp`` in ms, or None if it cannot be read."""
    raw = record.get("timestamp")
    if not isinstance(raw, str):
        return None
    try:
        return to_ms(parse_timestamp(raw))
    except ValueError:
        return None


# Records are parsed JSON: their objects are dicts, so ``isinstance(x, dict)`` below (the
# fold's hot path: an ABC check such as ``Mapping`` costs several times more).
def endpoint_key(record: Mapping[str, JSON]) -> str | None:
    """Which endpoint an event is about: its id in decimal, or, without one, its name (how
    Herald keeps a Stacuity endpointId that is no number); None if it names none usable."""
    endpoint = record.get("endpoint")
    if not isinstance(endpoint, dict):
        return None
    endpoint_id = endpoint.get("id")
    if type(endpoint_id) is int and endpoint_id >= 0:
        return str(endpoint_id)
    name = endpoint.get("name")
    # a name of digits only would be taken for an id by /endpoint/{id}: no key of its own
    if isinstance(name, str) and 0 < len(name) <= MAX_KEY and not name.isdigit():
        return name
    return None


class Effect(msgspec.Struct, frozen=True):
    """What one event does to a state: the facts it dates and the values it sets (what the
    fold keeps of an event instead of its record; a Struct: one is made per event)."""

    event_id: int
    type_id: int
    timestamp_ms: int
    facts: tuple[str, ...]
    values: dict[str, JSON]


def effect(event: DeviceEvent, values: bool = True) -> Effect:
    """The facts and values of ``event`` (its facts alone if not ``values``: all the
    status needs)."""
    return effect_of(event.event_id, event.type_id, event.timestamp_ms, event.record, values)


def effect_of(
    event_id: int, type_id: int, timestamp_ms: int, record: Mapping[str, JSON], values: bool = True
) -> Effect:
    """``effect`` of the event of these fields, without a ``DeviceEvent``."""
    opened = type_id in _SESSION_TYPES and (type_id != CREATE_PDP_CONTEXT or accepted(record))
    if type_id == CREATE_PDP_CONTEXT:
        facts: tuple[str, ...] = (SESSION_OPEN,) if opened else ()
    else:
        facts = _FACTS.get(type_id, ())
    found = _values(record, type_id, opened) if values else {}
    return Effect(event_id, type_id, timestamp_ms, facts, found)


def apply(state: DeviceState, event: DeviceEvent | Effect) -> DeviceState:
    """The state after ``event``: each fact and value keeps whichever is newer."""
    times, registers = dict(state.times), dict(state.registers)
    merge(times, registers, event if isinstance(event, Effect) else effect(event))
    return DeviceState(max(state.last_event_ms, event.timestamp_ms), times, registers)


def merge(times: dict[str, int], registers: dict[str, Register], change: Effect) -> None:
    """``apply`` in place, on a state's ``times`` and ``registers`` (its ``last_event_ms``
    is the caller's)."""
    ms, event_id = change.timestamp_ms, change.event_id
    for fact in change.facts:
        if ms > times.get(fact, 0):
            times[fact] = ms
    for name, value in change.values.items():
        held = registers.get(name)
        if held is None or ms > held[0] or (ms == held[0] and event_id > held[1]):
            registers[name] = (ms, event_id, value)


def accepted(record: Mapping[str, JSON]) -> bool:
    """Whether a Create PDP Context opened a session (emnify writes its refusals as policy
    control warnings: "PDP Context Request rejected, because ...")."""
    description = record.get("description")
    if isinstance(description, str) and "reject" in description.lower():
        return False
    if _id(record.get("event_source")) != _POLICY_CONTROL:
        return True
    severity = _id(record.get("event_severity"))
    return not (severity is not None and severity >= _WARN)


def _values(record: Mapping[str, JSON], type_id: int, opened: bool) -> dict[str, JSON]:
    """The registers an event of ``type_id`` with ``record`` sets (``opened``: it opened or
    continued a data session)."""
    endpoint = record.get("endpoint")
    # the endpoint's fields (``_scalars``), each a register: a missing or null one says nothing
    values: dict[str, JSON] = (
        {
            ENDPOINT_REGISTERS[key]: known[:MAX_TEXT] if known.__class__ is str else known
            for key, known in _items(endpoint, _ENDPOINT_FIELDS)
            if known.__class__ in _KNOWN and key in _ENDPOINT_FIELDS
        }
        if isinstance(endpoint, dict)
        else {}
    )
    if type_id in _LABELS:
        name, label = _LABELS[type_id]
        values[name] = label
    if type_id not in DETAIL_TYPES:
        return values
    detail = record.get("detail")
    detail = detail if isinstance(detail, dict) else {}
    if type_id in _LOCATION_TYPES and (type_id != CREATE_PDP_CONTEXT or opened):
        network = _network(detail)
        if network is not None:
            values["network"] = network
    if type_id in _ELEMENT:
        name, pattern = _ELEMENT[type_id]
        description = record.get("description")
        found = pattern.search(description) if isinstance(description, str) else None
        if found:
            values[name] = found.group(1)
    pdp = detail.get("pdp_context")
    if opened and isinstance(pdp, dict):
        values["session"] = _scalars(pdp, _SESSION_FIELDS)
    return values


def _network(detail: dict[str, JSON]) -> dict[str, JSON] | None:
    """The operator (with its country) of a location or session event's ``detail``."""
    name, country = detail.get("name"), detail.get("country")
    if not isinstance(name, str) and not isinstance(country, dict):
        return None
    operator = _scalars(detail, _OPERATOR_FIELDS)
    mncs = detail.get("mnc")
    if isinstance(mncs, list) and mncs and isinstance(mncs[0], dict):
        operator.update(_scalars(mncs[0], _MNC_FIELDS))
    elif isinstance(mncs, str):
        operator["mnc"] = mncs[:MAX_TEXT]
    if isinstance(country, dict):
        operator["country"] = _scalars(country, _COUNTRY_FIELDS)
    return operator


def _scalars(source: dict[str, JSON], keys: frozenset[str]) -> dict[str, JSON]:
    """The scalar values of ``keys`` in ``source``, text cut to ``MAX_TEXT`` (in either's
    order, whichever is shorter: the stored state's keys are sorted)."""
    return {
        key: value[:MAX_TEXT] if value.__class__ is str else value
        for key, value in _items(source, keys)
        if value.__class__ in _SCALARS and key in keys
    }


def _items(source: dict[str, JSON], keys: frozenset[str]) -> Iterable[tuple[str, JSON]]:
    """The items of ``source`` that may be under ``keys`` (the caller checks): all of them
    or those of ``keys``, whichever are fewer."""
    if len(source) <= len(keys):
        return source.items()
    return [(key, source[key]) for key in keys if key in source]


def _id(value: JSON) -> int | None:
    found = value.get("id") if isinstance(value, dict) else None
    return found if type(found) is int else None


# -- what the state says ------------------------------------------------------------------
_BLOCKS = tuple((f"block:{cause}", f"clear:{cause}") for cause in BLOCK_CAUSES)


def _t(state: DeviceState, fact: str) -> int:
    return state.times.get(fact, 0)


def session_open(state: DeviceState) -> bool:
    """A data session newer than its end and than any purge of the data domain."""
    t = state.times.get
    return t(SESSION_OPEN, 0) > max(t(SESSION_CLOSE, 0), t(DETACH, 0), t(PS_DETACH, 0))


def attached(state: DeviceState) -> tuple[bool, bool]:
    """(circuit-switched, packet-switched): attached to each domain since its last purge.
    A session's start or end shows the device on the data domain at that time."""
    t = state.times.get
    cs = t(CS_ATTACH, 0) > t(DETACH, 0)
    seen_ps = max(t(PS_ATTACH, 0), t(SESSION_OPEN, 0), t(SESSION_CLOSE, 0))
    return cs, seen_ps > max(t(DETACH, 0), t(PS_DETACH, 0))


def blocked(state: DeviceState) -> bool:
    """A block newer than what lifts it; an accepted data session since lifts every block."""
    t = state.times.get
    opened = t(SESSION_OPEN, 0)
    for block, clear in _BLOCKS:
        since = t(block)
        if since is not None and since > opened and since > t(clear, 0):
            return True
    return False


def status(state: DeviceState) -> Status:
    return status_of(state.times)


def status_of(times: Mapping[str, int]) -> Status:
    """The status of a state with these facts: ``blocked``, else ``session_open``, else
    ``attached`` to either domain, in one pass (the fold asks it of every state it writes,
    twice per event whose changes are watched)."""
    t = times.get
    opened, closed = t(SESSION_OPEN, 0), t(SESSION_CLOSE, 0)
    for block, clear in _BLOCKS:
        since = t(block)
        if since is not None and since > opened and since > t(clear, 0):
            return Status.BLOCKED
    purged = t(DETACH, 0)
    ps_purged = max(purged, t(PS_DETACH, 0))
    if opened > max(closed, ps_purged):
        return Status.ONLINE
    if t(CS_ATTACH, 0) > purged or max(t(PS_ATTACH, 0), opened, closed) > ps_purged:
        return Status.ATTACHED
    return Status.OFFLINE


def services(state: DeviceState) -> list[str]:
    """``GPRS`` while on the data domain, ``SMS`` while on the circuit-switched one."""
    cs, ps = attached(state)
    return [name for name, on in (("GPRS", ps or session_open(state)), ("SMS", cs)) if on]


def value(state: DeviceState, name: str) -> JSON:
    kept = state.registers.get(name)
    return kept[2] if kept is not None else None


def endpoint(state: DeviceState) -> dict[str, JSON]:
    """The endpoint's fields as known: each the newest event's that gave it."""
    registers = state.registers
    return {
        key: registers[name][2] for key, name in ENDPOINT_REGISTERS.items() if name in registers
    }


def location(state: DeviceState) -> dict[str, JSON] | None:
    """The network the device was last seen on, with the elements serving it."""
    kept = state.registers.get("network")
    if kept is None:
        return None
    network: dict[str, JSON] = kept[2]
    found: dict[str, JSON] = {
        "operator": network,
        "country": network.get("country"),
        "last_updated": format_ms(kept[0]),
    }
    for element in ("vlr", "sgsn"):
        found[element] = value(state, element)
    return found


def pdp_context(state: DeviceState) -> dict[str, JSON] | None:
    """The open data session's parameters, or None without one."""
    if not session_open(state):
        return None
    kept = state.registers.get("session")
    ended = max(_t(state, SESSION_CLOSE), _t(state, DETACH), _t(state, PS_DETACH))
    current = kept is not None and kept[0] > ended  # not the parameters of an older session
    context: dict[str, JSON] = dict(kept[2]) if kept is not None and current else {}
    context.setdefault("tunnel_created", format_ms(_t(state, SESSION_OPEN)))
    if "ue_ip_address" not in context:
        context["ue_ip_address"] = value(state, ENDPOINT_REGISTERS["ip_address"])
    return context


# -- keeping it ---------------------------------------------------------------------------
def dumps(state: DeviceState) -> bytes:
    return orjson.dumps(
        {
            "last": state.last_event_ms,
            "times": state.times,
            "registers": state.registers,  # (ms, event id, value): arrays
        },
        option=orjson.OPT_SORT_KEYS,
    )


class _Kept(msgspec.Struct):
    """A state as ``dumps`` writes it, decoded in one compiled call."""

    last: int
    times: dict[str, int]
    registers: dict[str, tuple[int, int, Any]]


_KEPT = msgspec.json.Decoder(_Kept)


def loads(data: bytes | str) -> DeviceState:
    try:
        kept = _KEPT.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return _loads_any(data)  # not as ``dumps`` writes it now: as read before
    if "endpoint" in kept.registers:
        return _loads_any(data)
    return DeviceState(kept.last, kept.times, kept.registers)


def _loads_any(data: bytes | str) -> DeviceState:
    """``loads`` of any state kept before (numbers as text, the endpoint in one register)."""
    raw = orjson.loads(data)
    registers = {name: (int(k[0]), int(k[1]), k[2]) for name, k in raw["registers"].items()}
    legacy = registers.pop("endpoint", None)  # a state kept before: all fields in one
    if legacy is not None and isinstance(legacy[2], dict):
        for key, known in legacy[2].items():
            name = ENDPOINT_REGISTERS.get(key)
            held = registers.get(name) if name else None
            if name and known is not None and (held is None or legacy[:2] > held[:2]):
                registers[name] = (legacy[0], legacy[1], known)
    return DeviceState(int(raw["last"]), dict(raw["times"]), registers)
