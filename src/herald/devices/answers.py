"""What the endpoint routes answer, declared once: the builders (``devices.service``,
``devices.usage``) return these, mypy holds them to it, and ``api/openapi.py`` puts their
JSON Schema in the document. Plain dicts at run time: a fleet page of a thousand endpoints
is built and serialised with no model in between."""

from __future__ import annotations

from typing import Annotated, Any, Required

from pydantic import Field
from typing_extensions import TypedDict


class StatusLevel(TypedDict):
    """A connectivity status: ``id`` 0 ATTACHED, 1 ONLINE, 2 OFFLINE, 3 BLOCKED."""

    id: int
    description: str


class EndpointOrganisation(TypedDict):
    id: int


class Connectivity(TypedDict):
    """An endpoint's connectivity as emnify's ``/endpoint/{id}/connectivity`` answers it."""

    status: StatusLevel
    location: dict[str, Any] | None
    pdp_context: dict[str, Any] | None
    services: list[str]


class EndpointSummary(Connectivity):
    """One endpoint of the fleet list, with its connectivity and when it was last seen."""

    id: int | None
    name: str | None
    imei: Any
    ip_address: Any
    organisation: EndpointOrganisation
    sim_status: Any
    quota_status: Any
    last_seen: str
    updated: str


class StatusCount(TypedDict):
    status: StatusLevel
    count: int


class StatusCounts(TypedDict):
    total: int
    counts: list[StatusCount]


class TrafficType(TypedDict):
    id: Annotated[int, Field(description="5 data, 6 SMS")]
    description: str
    unit: Annotated[str, Field(description="MB for data, SMS for messages")]


class UsageVolume(TypedDict):
    """A volume: data in MB (6 decimals), SMS in messages; tx sent by the device (MO),
    rx received by it (MT)."""

    volume: float
    volume_tx: float
    volume_rx: float


class SmsVolume(UsageVolume):
    traffic_type: TrafficType


class DataVolume(SmsVolume):
    source: Annotated[
        str | None,
        Field(
            description="Which source gave the day's data: records (usage records), sessions "
            "(Delete PDP Context volumes, on a day without data usage records), or null (none)."
        ),
    ]


class UsageDay(TypedDict):
    """One UTC day of an endpoint's usage, as emnify's ``/stats/daily`` answers it."""

    date: Annotated[
        str, Field(description="YYYY-MM-DD (UTC)", json_schema_extra={"format": "date"})
    ]
    data: DataVolume
    sms: SmsVolume


class UsageMonthVolume(UsageVolume):
    month: Annotated[str, Field(description="The month's first day, YYYY-MM-DD")]
    traffic_type_id: int
    traffic_type: TrafficType


class UsageMonth(TypedDict):
    data: UsageMonthVolume
    sms: UsageMonthVolume


class UsageMinute(UsageVolume):
    time: Annotated[str, Field(description="The minute's start, ISO 8601 UTC")]


class UsageHour(TypedDict):
    """The last 60 minutes, per minute with traffic."""

    data: list[UsageMinute]
    sms: list[UsageMinute]


class UsageStats(TypedDict, total=False):
    """An endpoint's usage as emnify's ``/stats`` answers it; a month only with traffic."""

    last_month: UsageMonth
    current_month: UsageMonth
    last_hour: Required[UsageHour]


ANSWERS: tuple[type, ...] = (Connectivity, EndpointSummary, StatusCounts, UsageDay, UsageStats)
"""The answers the document names (the types they hold come with them)."""
