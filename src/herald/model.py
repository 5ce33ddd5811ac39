"""The event's names in one place: what a producer may send (``EventIn`` and its
references, checked by the compiled codec ``herald.events.codec``), how it is completed
(``build_event``) and what the store keeps (``herald.record``).

``Timestamp`` is the pydantic type of a time in the API's CRUD bodies (a handler's replay,
a rule's preview): the event path itself holds no pydantic.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

from herald.events.build import build_event as build_event
from herald.events.codec import Checked as Checked
from herald.events.codec import EndpointRef as EndpointRef
from herald.events.codec import EventIn as EventIn
from herald.events.codec import FieldError as FieldError
from herald.events.codec import ImsiRef as ImsiRef
from herald.events.codec import LevelRef as LevelRef
from herald.events.codec import OrganisationRef as OrganisationRef
from herald.events.codec import SimRef as SimRef
from herald.events.codec import TargetRef as TargetRef
from herald.events.codec import TypeRef as TypeRef
from herald.events.codec import UserRef as UserRef
from herald.record import JSON as JSON
from herald.record import NULL_WHEN_ABSENT as NULL_WHEN_ABSENT
from herald.record import NewEvent as NewEvent
from herald.record import served_record as served_record
from herald.record import with_null_keys as with_null_keys
from herald.timefmt import in_range, parse_timestamp


def _timestamp(value: object) -> object:
    return parse_timestamp(value) if isinstance(value, str) else value


Timestamp = Annotated[datetime, BeforeValidator(_timestamp), AfterValidator(in_range)]
"""An ISO 8601 time in a CRUD body, in the years Herald serves."""
