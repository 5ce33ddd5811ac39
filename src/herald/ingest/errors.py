"""Why a provider record could not be normalised."""

from __future__ import annotations


class RecordError(ValueError):
    """A provider record is unusable: ``field`` names what, ``reason`` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
