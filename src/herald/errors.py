"""The errors Herald's services raise, whatever called them: each says what went wrong in
the caller's terms (which field, which limit) and knows nothing of HTTP.

``api/problems.py`` answers each class one way (its status, a problem+json body), as it does
the store's errors (``store/errors.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

FieldErrors = list[dict[str, Any]]
"""``{"field": "event_type.id", "reason": "...", "index": 3}`` entries (``index``: the item
of a batch, when one)."""


class DomainError(Exception):
    """Base of the services' errors: a title, a detail sentence and the fields at fault."""

    title = "Invalid request"

    def __init__(
        self,
        detail: str | None = None,
        errors: Sequence[Mapping[str, Any]] = (),
        *,
        title: str | None = None,
    ) -> None:
        super().__init__(detail or title or self.title)
        self.detail = detail
        self.errors: FieldErrors = [dict(error) for error in errors]
        if title is not None:
            self.title = title

    @classmethod
    def at(cls, field: str, reason: str, *, title: str | None = None) -> DomainError:
        """The error about one field (or parameter)."""
        return cls(f"{field}: {reason}", [{"field": field, "reason": reason}], title=title)


class Malformed(DomainError):
    """The request cannot be read as asked: a body that is not JSON, a bad parameter."""


class Invalid(DomainError):
    """The request was read but is refused: a field's value, a filter, a batch."""


class Forbidden(DomainError):
    """The caller may not do this (another organisation's, a permission it lacks)."""

    title = "Forbidden"


class NotFound(DomainError):
    """No such thing among the caller's."""

    title = "Not found"


class TooMany(DomainError):
    """Over a limit of things open at once (live streams): refused until one ends."""


class RetryLater(DomainError):
    """Refused for now (a budget spent, every slot taken): the same request after
    ``retry_after`` seconds may pass."""

    def __init__(
        self,
        detail: str,
        errors: Sequence[Mapping[str, Any]] = (),
        *,
        title: str,
        retry_after: int,
    ) -> None:
        super().__init__(detail, errors, title=title)
        self.retry_after = retry_after


def location(loc: Sequence[str | int]) -> tuple[str, int | None]:
    """Pydantic's error location as a dotted field name, and the batch index if any."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    index: int | None = None
    if parts and isinstance(parts[0], int):
        index = int(parts.pop(0))
    name = ".".join(str(p) for p in parts if not str(p).startswith("function-")) or "body"
    return name, index


def validation_errors(errors: Sequence[Mapping[str, Any]], index: int | None = None) -> FieldErrors:
    """Pydantic errors as field error entries."""
    out: FieldErrors = []
    for error in errors:
        field, loc_index = location(error.get("loc", ()))
        reason = error.get("msg", "invalid")
        if error.get("type") == "value_error" and "error" in error.get("ctx", {}):
            reason = str(error["ctx"]["error"])  # our own sentence, without "Value error, "
        entry: dict[str, Any] = {"field": field, "reason": reason}
        at = index if index is not None else loc_index
        if at is not None:
            entry["index"] = at
        out.append(entry)
    return out
