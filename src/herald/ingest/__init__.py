"""Provider adapters: each provider's event records, normalised into Herald's ``EventIn``.

``records`` reads the emnify/1NCE data-streamer record, ``stacuity`` the Stacuity event
handler envelope; ``PROVIDERS`` names each adapter's normaliser.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from herald.ingest.errors import RecordError
from herald.ingest.records import normalise_record
from herald.ingest.stacuity import normalise_envelope

Normaliser = Callable[[object], dict[str, Any]]

PROVIDERS: dict[str, Normaliser] = {
    "emnify": normalise_record,
    "1nce": normalise_record,
    "stacuity": normalise_envelope,
}
"""Provider name (as in the ``ingest:<provider>`` permission) -> its normaliser."""

__all__ = ["PROVIDERS", "Normaliser", "RecordError", "normalise_envelope", "normalise_record"]
