"""The device-state fold, pure: what log entries do to the states of the endpoints they
name (order-free and idempotent, ``herald.devices.state``), the status changes they make,
and the row a state is stored as."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from herald.devices import changes
from herald.devices import state as device_state
from herald.devices.decode import record_fields
from herald.events.types import LogEntry
from herald.record import NewEvent
from herald.store.device_records import DeviceRow

Key = tuple[int, str]
ENDPOINT_NAME = device_state.ENDPOINT_REGISTERS["name"]
GIL_TURN_EVERY = 50  # events folded between two offers of the GIL (herald.gil's ~0.5 ms)


def parse(
    entries: Sequence[LogEntry], built: Mapping[int, NewEvent] | None = None
) -> list[tuple[Key, device_state.Effect]]:
    """What the log entries that name an endpoint do to its state, with its key
    (organisation, endpoint). The records of ``built`` (by event id: events as this process
    appended them) are taken as they are; the others are decoded from the entries."""
    parsed: list[tuple[Key, device_state.Effect]] = []
    for entry in entries:
        type_id = entry.type_id
        if type_id in changes.TYPES:  # Herald's own word on a state, not the device's
            continue
        known = built.get(entry.event_id) if built else None
        record = known.record if known else record_fields(type_id, entry.body)
        if record is None:
            continue
        key = device_state.endpoint_key(record)
        if key is None:
            continue
        ms = entry.timestamp_ms
        if ms is None and (ms := device_state.record_ms(record)) is None:
            continue
        change = device_state.effect_of(entry.event_id, type_id, ms, record)
        parsed.append(((entry.organisation_id, key), change))
    return parsed


def fold(
    stored: Mapping[Key, device_state.DeviceState | None],
    events: Sequence[tuple[Key, device_state.Effect]],
    watched: Callable[[Key, device_state.Effect], bool] | None = None,
) -> tuple[dict[Key, device_state.DeviceState], list[changes.Change]]:
    """The states ``events`` change, given the ``stored`` states of the endpoints they name
    (None: no row yet), and the status changes of the ``watched`` endpoints' events, each
    event's in log order. Each endpoint's state is copied once and folded in place."""
    working: dict[Key, _Working] = {}
    found: list[changes.Change] = []
    for index, (at, event) in enumerate(events):
        if index % GIL_TURN_EVERY == GIL_TURN_EVERY - 1:
            time.sleep(0)  # as ``herald.gil.offer_gil``: requests' threads get their turns
        state = working.get(at)
        if state is None:
            state = working[at] = _Working(stored.get(at))
        if watched is None or not watched(at, event):
            state.merge(event)
            continue
        old = device_state.status_of(state.times)
        state.merge(event)
        new = device_state.status_of(state.times)
        if old != new:
            endpoint = device_state.endpoint(state.view())
            found.append(changes.Change(at[0], at[1], old, new, event, endpoint))
    folded = {at: state.view() for at, state in working.items()}
    return {at: new for at, new in folded.items() if new != stored.get(at)}, found


class _Working:
    """One endpoint's state being folded: its own copy, changed in place."""

    __slots__ = ("last", "registers", "times")

    def __init__(self, kept: device_state.DeviceState | None) -> None:
        self.last = kept.last_event_ms if kept else 0
        self.times: dict[str, int] = dict(kept.times) if kept else {}
        self.registers: dict[str, device_state.Register] = dict(kept.registers) if kept else {}

    def merge(self, event: device_state.Effect) -> None:
        device_state.merge(self.times, self.registers, event)
        if event.timestamp_ms > self.last:
            self.last = event.timestamp_ms

    def view(self) -> device_state.DeviceState:
        """The state as it stands (sharing this copy's dicts)."""
        return device_state.DeviceState(self.last, self.times, self.registers)


def to_row(
    organisation_id: int, key: str, folded: device_state.DeviceState, at_ms: int
) -> DeviceRow:
    """The stored row of a state, with the columns lists filter on."""
    name = device_state.value(folded, ENDPOINT_NAME)
    network = device_state.value(folded, "network") or {}
    country = network.get("country") or {}
    numbered = key.isdigit()
    return DeviceRow(  # by position: a quarter cheaper than by name, for every row written
        organisation_id,
        key,  # endpoint_key
        int(key) if numbered else None,  # endpoint_id
        name if isinstance(name, str) else (None if numbered else key),  # endpoint_name
        int(device_state.status_of(folded.times)),  # status
        country.get("name") if isinstance(country.get("name"), str) else None,  # country
        network.get("name") if isinstance(network.get("name"), str) else None,  # operator
        folded.last_event_ms,
        at_ms,  # updated_ms
        device_state.dumps(folded).decode(),  # state
    )
