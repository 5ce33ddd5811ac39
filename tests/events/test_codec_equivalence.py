"""The compiled codec (``events.codec`` + ``events.build``) against the pydantic path it
replaced (``pydantic_path``, ``herald.model`` before): the same events accepted and refused,
the same record bytes.

Fed the whole shared reference set (emnify's examples as posted to the API; emnify, 1NCE and
Stacuity records through their adapters), hostile documents and generated ones. Inputs only
pydantic's looser coercion took (``LAX_ONLY``) are refused by the codec on purpose and left
out here: ``test_codec.py`` holds that.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from herald.errors import validation_errors
from herald.ingest import PROVIDERS, RecordError
from tests.events import pydantic_path
from tests.events.corpus import (
    CATALOG,
    DOCUMENTS,
    HOSTILE,
    NOW,
    ORG_ID,
    Outcome,
    columns,
    new_path,
    reference_cases,
    typed_lax,
)

_OLD = TypeAdapter(pydantic_path.EventIn)


def old_path(document: Any, internal: bool, provider: str, provider_type: str | None) -> Outcome:
    try:
        event = _OLD.validate_python(document)
    except ValidationError as exc:
        return "refused", {e["field"].split(".")[0] for e in validation_errors(exc.errors())}
    result = pydantic_path.build_event(
        event,
        organisation=pydantic_path.OrganisationRef(id=ORG_ID, name="Acme IoT"),
        catalog=CATALOG,
        received_ms=NOW,
        internal=internal,
        provider=provider,
        provider_type=provider_type,
        retention_days=30,
    )
    if isinstance(result, list):
        return "refused", {e.field.split(".")[0] for e in result}
    return "stored", (result.stored_body(1), columns(result))


def assert_same(
    document: Any,
    internal: bool = True,
    provider: str = "api",
    provider_type: str | None = None,
) -> Outcome:
    old = old_path(document, internal, provider, provider_type)
    new = new_path(document, internal, provider, provider_type)
    assert old[0] == new[0], (document, old, new)
    if old[0] == "stored":
        assert old[1] == new[1], document  # byte for byte, and the same columns
    else:
        assert isinstance(new[1], set) and isinstance(old[1], set)
        assert new[1] <= old[1], (document, old, new)  # pydantic names every field
    return new


def test_the_whole_reference_set_is_built_byte_for_byte_alike() -> None:
    cases = reference_cases()
    assert len(cases) >= 150
    stored = 0
    for document, internal, provider, provider_type in cases:
        outcome = assert_same(document, internal, provider, provider_type)
        stored += outcome[0] == "stored"
    assert stored >= 140  # the set is events Herald stores, not refusals


@pytest.mark.parametrize("document", HOSTILE)
@pytest.mark.parametrize("internal", [True, False])
def test_hostile_documents_alike(document: Any, internal: bool) -> None:
    assert_same(document, internal)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=DOCUMENTS, internal=st.booleans())
def test_generated_documents_alike(document: dict[str, Any], internal: bool) -> None:
    assume(not typed_lax(document))
    assert_same(orjson.loads(orjson.dumps(document)), internal)


def test_adapter_refusals_stay_refusals() -> None:
    with pytest.raises(RecordError):
        PROVIDERS["emnify"]("not a record")
