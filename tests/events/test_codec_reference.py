"""The codec against frozen outcomes: every record of the shared reference set and every
hostile document, built as ``reference_records.json`` holds (record bytes and columns byte
for byte, or the fields and reasons of a refusal).

The file was written by the codec once an equivalence test had found it alike the pydantic
path it replaced over the same cases, hostile and generated documents (issue 31; BENCHMARKS
#68; that test and the old path left with it). A deliberate change of a record writes it
anew: ``python -m tests.events.test_codec_reference`` (then review its diff).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import orjson

from herald.events import build, codec
from tests.events.corpus import CATALOG, HOSTILE, NOW, ORG_ID, Case, columns, reference_cases

FROZEN = Path(__file__).with_name("reference_records.json")


def cases() -> list[Case]:
    """The reference set and the hostile documents (each as a tenant and as the platform)."""
    hostile = [(doc, internal, "api", None) for doc in HOSTILE for internal in (True, False)]
    return reference_cases() + hostile


def key(case: Case) -> str:
    return hashlib.sha256(repr(case).encode()).hexdigest()[:20]


def outcome(case: Case) -> dict[str, Any]:
    """What the codec makes of a case, as the file keeps it."""
    document, internal, provider, provider_type = case
    checked = codec.check(document)
    if isinstance(checked, list):
        return {"refused": [[e.field, e.reason] for e in checked]}
    result = build.build_event(
        checked,
        organisation=codec.OrganisationRef(id=ORG_ID, name="Acme IoT"),
        catalog=CATALOG,
        received_ms=NOW,
        internal=internal,
        provider=provider,
        provider_type=provider_type,
        retention_days=30,
    )
    if isinstance(result, list):
        return {"refused": [[e.field, e.reason] for e in result]}
    return {
        "record": result.stored_body(1).decode(),
        "columns": list(columns(result)),
    }


def test_every_case_builds_as_frozen() -> None:
    frozen = orjson.loads(FROZEN.read_bytes())
    every = cases()
    assert len(every) >= 280 and len(frozen) == len({key(case) for case in every})
    for case in every:
        assert outcome(case) == frozen[key(case)], case[0]


def test_the_reference_set_is_mostly_stored() -> None:
    """The set is events Herald keeps, not refusals: a regression refusing them all shows
    here plainly."""
    frozen = orjson.loads(FROZEN.read_bytes())
    outcomes = [frozen[key(case)] for case in reference_cases()]
    assert sum("record" in value for value in outcomes) >= 140


if __name__ == "__main__":
    written = {key(case): outcome(case) for case in cases()}
    FROZEN.write_bytes(orjson.dumps(written, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"wrote {len(written)} outcomes to {FROZEN}")  # noqa: T201
