"""Topic, subject and routing-key templates: ``herald/{organisation_id}/{event_type}``.

A template names fields of the event; each value is sanitised to ``[A-Za-z0-9_-]`` (at
most 64 characters, ``none`` when absent) so that an event can never add a level, a
wildcard or a separator to what the tenant wrote. The literal text is checked when the
handler is created, with the rules of the sink's broker.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Callable, Mapping
from typing import Any

FIELDS = (
    "organisation_id",
    "event_type",
    "moniker",
    "severity",
    "endpoint_id",
    "target_type",
    "target_id",
)
MAX_TEMPLATE_CHARS = 255
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class TemplateError(ValueError):
    """A template that cannot be used; the message says why."""


def _nested(record: Mapping[str, Any], key: str, field: str) -> Any:
    value = record.get(key)
    return value.get(field) if isinstance(value, dict) else None


_GETTERS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "organisation_id": lambda r: _nested(r, "organisation", "id"),
    "event_type": lambda r: _nested(r, "event_type", "id"),
    "moniker": lambda r: r.get("moniker"),
    "severity": lambda r: (_nested(r, "event_severity", "description") or "").lower() or None,
    "endpoint_id": lambda r: _nested(r, "endpoint", "id"),
    "target_type": lambda r: _nested(r, "target", "type"),
    "target_id": lambda r: _nested(r, "target", "id"),
}


def sanitise(value: Any) -> str:
    """A field's value as a template puts it: safe characters only, never empty."""
    if value is None or value == "":
        return "none"
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return _UNSAFE.sub("_", text)[:64]


def fields_of(template: str) -> list[str]:
    """The field names ``template`` uses; TemplateError if it is malformed or names
    an unknown field, a format spec or a conversion."""
    if not template:
        raise TemplateError("must not be empty")
    if len(template) > MAX_TEMPLATE_CHARS:
        raise TemplateError(f"at most {MAX_TEMPLATE_CHARS} characters")
    if any(not char.isprintable() or char.isspace() for char in template):
        raise TemplateError("must not hold spaces or control characters")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(f"malformed template: {exc}") from None
    names = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in _GETTERS:
            raise TemplateError(f"unknown field {{{name}}}; known: {', '.join(FIELDS)}")
        if spec or conversion:
            raise TemplateError(f"{{{name}}} takes no format spec or conversion")
        names.append(name)
    return names


@functools.lru_cache(maxsize=1024)
def is_constant(template: str) -> bool:
    """Whether the template names no field: every event goes to the same place."""
    return not fields_of(template)


def literal(template: str) -> str:
    """The template with every field replaced by a sample value (what checks judge)."""
    fields_of(template)
    return template.format_map(dict.fromkeys(FIELDS, "x"))


def expand(template: str, record: Mapping[str, Any]) -> str:
    """The template filled in from an event record."""
    return template.format_map({name: sanitise(get(record)) for name, get in _GETTERS.items()})


def check_mqtt_topic(template: str) -> None:
    """An MQTT topic to publish to: no wildcards, no NUL, within the length limit."""
    topic = literal(template)
    if "+" in topic or "#" in topic:
        raise TemplateError("an MQTT topic to publish to may not hold + or #")
    if topic.startswith("$"):
        raise TemplateError("topics starting with $ are the broker's")


def check_nats_subject(template: str) -> None:
    """A NATS subject: dot-separated non-empty tokens, no wildcards."""
    subject = literal(template)
    if "*" in subject or ">" in subject:
        raise TemplateError("a NATS subject to publish to may not hold * or >")
    if any(token == "" for token in subject.split(".")):
        raise TemplateError("no empty tokens (no leading, trailing or double dots)")


def check_routing_key(template: str) -> None:
    """An AMQP routing key: printable, within 255 bytes once expanded."""
    fields = fields_of(template)
    longest = len(template.format_map(dict.fromkeys(FIELDS, "x" * 64)).encode())
    if longest > 255 and fields:
        raise TemplateError("may expand past 255 bytes (each field takes up to 64)")
    if len(template.encode()) > 255:
        raise TemplateError("at most 255 bytes")
