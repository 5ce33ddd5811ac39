"""Who lives in the simulated world: organisations and their devices (endpoint, SIM, IMSI).

Identities derive from the device's index alone, so a fleet is the same for a given size
whatever the seed; the seed decides what happens to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from herald.simulate.geo import NEIGHBOURS

ORGANISATION_NAMES = (
    "Demo organisation",
    "Acme Logistics",
    "Nordic Metering",
    "Voltline Charging",
    "Harbour Containers",
    "Payfleet POS",
    "Agrisense",
    "Cityscoot Mobility",
)
_KINDS = ("tracker", "meter", "charger", "pos", "sensor", "scooter")
_HOMES = tuple(NEIGHBOURS)
_PRODUCED = "2025-06-02T09:14:00.000Z"


@dataclass(frozen=True, slots=True)
class Organisation:
    id: int
    name: str


def organisations(count: int) -> list[Organisation]:
    """Organisations 1..count, named."""
    return [
        Organisation(
            i,
            ORGANISATION_NAMES[(i - 1) % len(ORGANISATION_NAMES)]
            + (f" {1 + (i - 1) // len(ORGANISATION_NAMES)}" if i > len(ORGANISATION_NAMES) else ""),
        )
        for i in range(1, count + 1)
    ]


@cache
def _luhn(digits: str) -> str:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return digits + str((10 - total % 10) % 10)


@dataclass(frozen=True, slots=True)
class Device:
    """One endpoint with its SIM and IMSI, in one organisation, at home in one country."""

    index: int
    organisation: Organisation
    home: str  # ISO code of the home country

    @property
    def endpoint_id(self) -> int:
        return 100_000 + self.index

    @property
    def name(self) -> str:
        return f"{_KINDS[self.index % len(_KINDS)]}-{self.index:05d}"

    @property
    def imsi(self) -> str:
        return f"90143{self.index:010d}"

    @property
    def ip_address(self) -> str:
        return f"10.{(self.index >> 16) & 255}.{(self.index >> 8) & 255}.{self.index & 255}"

    def endpoint(self) -> dict[str, Any]:
        return {
            "id": self.endpoint_id,
            "name": self.name,
            "ip_address": self.ip_address,
            "imei": _luhn(f"35209900{self.index:06d}"),
            "tags": _KINDS[self.index % len(_KINDS)],
        }

    def sim(self) -> dict[str, Any]:
        return {
            "id": 200_000 + self.index,
            "iccid": _luhn(f"898830300{self.index:010d}"),
            "msisdn": f"4236{self.index:09d}",
            "production_date": _PRODUCED,
        }

    def imsi_ref(self) -> dict[str, Any]:
        return {"id": 300_000 + self.index, "imsi": self.imsi, "import_date": _PRODUCED}


def devices(count: int, orgs: list[Organisation]) -> list[Device]:
    """``count`` devices spread over the organisations and a dozen home countries."""
    return [
        Device(i, orgs[i % len(orgs)], _HOMES[(i // len(orgs)) % len(_HOMES)]) for i in range(count)
    ]
