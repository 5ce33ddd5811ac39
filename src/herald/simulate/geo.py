"""Real countries and mobile operators (MCC/MNC, TADIG codes) for the simulated networks.

The objects have the shape of the ``detail`` of emnify's location events: an operator
``{"id", "name", "country": {...}, "tapcode": [...], "mnc": [...]}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Country:
    id: int
    name: str
    country_code: str
    mcc: str
    iso_code: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "country_code": self.country_code,
            "mcc": self.mcc,
            "iso_code": self.iso_code,
        }


@dataclass(frozen=True, slots=True)
class Operator:
    id: int
    name: str
    country: Country
    mnc: str
    tapcode: str

    def as_detail(self) -> dict[str, Any]:
        """The operator as the ``detail`` of an Update location event."""
        return {
            "id": self.id,
            "name": self.name,
            "country": self.country.as_dict(),
            "tapcode": [{"id": self.id, "tapcode": self.tapcode}],
            "mnc": [{"id": self.id, "mnc": self.mnc}],
        }


_COUNTRIES = {
    "de": Country(74, "Germany", "49", "262", "de"),
    "nl": Country(141, "Netherlands", "31", "204", "nl"),
    "fr": Country(67, "France", "33", "208", "fr"),
    "gb": Country(205, "United Kingdom", "44", "234", "gb"),
    "es": Country(181, "Spain", "34", "214", "es"),
    "it": Country(95, "Italy", "39", "222", "it"),
    "at": Country(12, "Austria", "43", "232", "at"),
    "ch": Country(190, "Switzerland", "41", "228", "ch"),
    "pl": Country(156, "Poland", "48", "260", "pl"),
    "se": Country(189, "Sweden", "46", "240", "se"),
    "us": Country(214, "United States", "1", "310", "us"),
    "br": Country(28, "Brazil", "55", "724", "br"),
}

OPERATORS: tuple[Operator, ...] = (
    Operator(2, "Telekom", _COUNTRIES["de"], "01", "DEUD1"),
    Operator(3, "Vodafone", _COUNTRIES["de"], "02", "DEUD2"),
    Operator(4, "O2", _COUNTRIES["de"], "03", "DEUE2"),
    Operator(730, "T-Mobile", _COUNTRIES["nl"], "16", "NLDPN"),
    Operator(731, "KPN", _COUNTRIES["nl"], "08", "NLDPT"),
    Operator(732, "Vodafone", _COUNTRIES["nl"], "04", "NLDLT"),
    Operator(610, "Orange", _COUNTRIES["fr"], "01", "FRAF1"),
    Operator(611, "SFR", _COUNTRIES["fr"], "10", "FRAF2"),
    Operator(612, "Bouygues Telecom", _COUNTRIES["fr"], "20", "FRAF3"),
    Operator(820, "EE", _COUNTRIES["gb"], "30", "GBRME"),
    Operator(821, "Vodafone", _COUNTRIES["gb"], "15", "GBRVF"),
    Operator(822, "O2", _COUNTRIES["gb"], "10", "GBRCN"),
    Operator(700, "Movistar", _COUNTRIES["es"], "07", "ESPTE"),
    Operator(701, "Orange", _COUNTRIES["es"], "03", "ESPRT"),
    Operator(650, "TIM", _COUNTRIES["it"], "01", "ITASI"),
    Operator(651, "Vodafone", _COUNTRIES["it"], "10", "ITAOM"),
    Operator(120, "A1", _COUNTRIES["at"], "01", "AUTPT"),
    Operator(121, "Magenta", _COUNTRIES["at"], "03", "AUTMM"),
    Operator(900, "Swisscom", _COUNTRIES["ch"], "01", "CHEC1"),
    Operator(901, "Sunrise", _COUNTRIES["ch"], "02", "CHEDX"),
    Operator(560, "Plus", _COUNTRIES["pl"], "01", "POLPL"),
    Operator(561, "Orange", _COUNTRIES["pl"], "03", "POL03"),
    Operator(880, "Telia", _COUNTRIES["se"], "01", "SWETR"),
    Operator(881, "Tele2", _COUNTRIES["se"], "07", "SWEIQ"),
    Operator(990, "AT&T", _COUNTRIES["us"], "410", "USACG"),
    Operator(991, "T-Mobile", _COUNTRIES["us"], "260", "USAW6"),
    Operator(300, "Vivo", _COUNTRIES["br"], "06", "BRAV3"),
    Operator(301, "Claro", _COUNTRIES["br"], "05", "BRACL"),
)
"""A dozen countries, two or three networks each."""

NEIGHBOURS: dict[str, tuple[str, ...]] = {
    "de": ("nl", "fr", "at", "ch", "pl"),
    "nl": ("de", "gb", "fr"),
    "fr": ("de", "es", "ch", "it", "gb"),
    "gb": ("fr", "nl"),
    "es": ("fr",),
    "it": ("fr", "ch", "at"),
    "at": ("de", "ch", "it"),
    "ch": ("de", "fr", "it", "at"),
    "pl": ("de", "se"),
    "se": ("pl", "de"),
    "us": ("br",),
    "br": ("us",),
}
"""Where a roaming device goes next (trucks cross borders, containers cross oceans)."""


def operators_in(iso_code: str) -> tuple[Operator, ...]:
    """The networks of one country."""
    return tuple(op for op in OPERATORS if op.country.iso_code == iso_code)
