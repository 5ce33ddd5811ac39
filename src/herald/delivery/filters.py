"""Which events a handler wants: a filter set by the tenant, matched against records."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from herald.catalog import SEVERITIES, SOURCES, Scope, load_catalog


class HandlerFilter(BaseModel):
    """Every field narrows; an empty filter passes all of the tenant's events.

    ``event_types`` and ``monikers`` together: an event of either passes.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_types: list[int] = Field(default_factory=list, max_length=1000)
    monikers: list[str] = Field(default_factory=list, max_length=1000)
    severities: list[int] = Field(default_factory=list)
    sources: list[int] = Field(default_factory=list)
    alert_only: bool = False
    target_types: list[str] = Field(default_factory=list)
    endpoint_ids: list[int] = Field(default_factory=list, max_length=10_000)
    tags: list[str] = Field(default_factory=list, max_length=100)

    @field_validator("monikers")
    @classmethod
    def _known_monikers(cls, value: list[str]) -> list[str]:
        catalog = load_catalog()
        unknown = [moniker for moniker in value if catalog.by_moniker(moniker) is None]
        if unknown:
            raise ValueError(f"unknown moniker(s): {', '.join(unknown)}")
        return value

    @field_validator("severities")
    @classmethod
    def _known_severities(cls, value: list[int]) -> list[int]:
        return _within(value, SEVERITIES)

    @field_validator("sources")
    @classmethod
    def _known_sources(cls, value: list[int]) -> list[int]:
        return _within(value, SOURCES)

    @field_validator("target_types")
    @classmethod
    def _known_targets(cls, value: list[str]) -> list[str]:
        return _within(value, {scope.value: scope for scope in Scope})

    @property
    def passes_all(self) -> bool:
        """Whether no field is set: every event of the tenant passes."""
        return self == _PASS_ALL

    @property
    def type_ids(self) -> frozenset[int] | None:
        """The event types that may pass, when the type alone decides (no monikers)."""
        return frozenset(self.event_types) if self.event_types and not self.monikers else None

    def matches(self, record: dict[str, Any]) -> bool:
        """Whether a stored record passes this filter."""
        if self.event_types or self.monikers:
            type_id = (record.get("event_type") or {}).get("id")
            if type_id not in self.event_types and record.get("moniker") not in self.monikers:
                return False
        severity = (record.get("event_severity") or {}).get("id")
        if self.severities and severity not in self.severities:
            return False
        if self.sources and (record.get("event_source") or {}).get("id") not in self.sources:
            return False
        if self.alert_only and not record.get("alert"):
            return False
        if self.target_types and (record.get("target") or {}).get("type") not in self.target_types:
            return False
        endpoint = record.get("endpoint") or {}
        if self.endpoint_ids and endpoint.get("id") not in self.endpoint_ids:
            return False
        if self.tags:
            tags = endpoint.get("tags") or ""
            if not any(tag in tags for tag in self.tags):
                return False
        return True


_PASS_ALL = HandlerFilter()


def _within(value: list[Any], known: Any) -> list[Any]:
    unknown = [item for item in value if item not in known]
    if unknown:
        raise ValueError(f"unknown value(s) {unknown}; known: {sorted(known)}")
    return value
