"""Tests for herald.catalog, checked against the shared provider reference documents."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest

from herald.catalog import (
    CRITICALITIES,
    CUSTOM_CODE_MIN,
    SEVERITIES,
    SOURCES,
    UNKNOWN_TYPES,
    Catalog,
    EventType,
    Moniker,
    Scope,
    load_catalog,
    normalise_severity,
    normalise_source,
)

REFERENCE = Path(__file__).parents[3] / "shared" / "reference"
STACUITY_SCOPES = {
    "Endpoint": Scope.ENDPOINT,
    "Routing Target": Scope.ROUTING_TARGET,
    "Customer Account": Scope.ORGANISATION,
}
Defaults = tuple[int, int, bool]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture(scope="module")
def reference() -> Path:
    if not REFERENCE.is_dir():
        pytest.skip(f"shared reference documents not found at {REFERENCE}")
    return REFERENCE


# --- parsing the reference documents -------------------------------------------------------


def markdown_tables(reference: Path) -> dict[int, tuple[str, str]]:
    """id -> (description, "## " group heading) from the emnify markdown's tables."""
    found: dict[int, tuple[str, str]] = {}
    group = ""
    for line in (reference / "emnify-event-types.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            group = line[3:].strip()
        match = re.match(r"^\|\s*(\d+)\s*\|\s*\[([^\]]+)\]", line)
        if match:
            found[int(match.group(1))] = (match.group(2).strip(), group)
    return found


def markdown_examples(reference: Path) -> list[dict[str, Any]]:
    """The ```json example records of the emnify markdown (lenient: one has a raw newline)."""
    text = (reference / "emnify-event-types.md").read_text(encoding="utf-8")
    return [
        json.loads(block, strict=False) for block in re.findall(r"```json\n(.*?)```", text, re.S)
    ]


def onece_lines(reference: Path) -> list[str]:
    return (reference / "1nce-event-records.txt").read_text(encoding="utf-8").splitlines()


def onece_table(reference: Path, header: str) -> dict[int, str]:
    """A two-column "id | text |" table of the 1NCE document, found by its header line."""
    lines = onece_lines(reference)
    rows: dict[int, str] = {}
    for line in lines[lines.index(header) + 2 :]:
        match = re.match(r"^(\d+) \| (.+?) \|$", line)
        if match is None:
            break
        rows[int(match.group(1))] = match.group(2).strip()
    return rows


def onece_examples(reference: Path) -> list[dict[str, Any]]:
    """The 1NCE example records: each follows a label line such as "01_Update_Location"."""
    lines = onece_lines(reference)
    starts = [n for n, line in enumerate(lines) if re.match(r"^\d\d_\w+$", line)]
    ends = [*starts[1:], lines.index("Generic Properties")]
    return [
        json.loads("\n".join(lines[start + 1 : end]), strict=False)
        for start, end in zip(starts, ends, strict=True)
    ]


def stacuity_table(reference: Path) -> list[tuple[str, str, str]]:
    """(name, moniker, scope) rows of the Stacuity table, in order."""
    rows = []
    for line in (reference / "stacuity-event-types.txt").read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] != "Event Name" and not cells[0].startswith("-"):
            rows.append((cells[0], cells[1], cells[2]))
    return rows


def observed(examples: Sequence[dict[str, Any]]) -> dict[int, list[Defaults]]:
    seen: dict[int, list[Defaults]] = {}
    for example in examples:
        seen.setdefault(example["event_type"]["id"], []).append(
            (
                example["event_severity"]["id"],
                example["event_source"]["id"],
                bool(example["alert"]),  # one emnify example spells alert as 1
            )
        )
    return seen


def majority(values: Sequence[object]) -> object:
    """Most frequent value; a tie goes to the first one seen."""
    counts = Counter(values)
    best = max(counts.values())
    return next(value for value in values if counts[value] == best)


ACCEPTED_SESSION_FIRST = 3  # Create PDP Context: defaults from the accepted session


def must_get(catalog: Catalog, type_id: int) -> EventType:
    event_type = catalog.get(type_id)
    assert event_type is not None, type_id
    return event_type


def defaults_of(event_type: EventType) -> tuple[object, object, object]:
    return (event_type.default_severity, event_type.default_source, event_type.default_alert)


def expected_defaults(records: list[Defaults]) -> tuple[object, object, object]:
    return (
        majority([r[0] for r in records]),
        majority([r[1] for r in records]),
        majority([r[2] for r in records]),
    )


# --- emnify and 1NCE ------------------------------------------------------------------------


def test_every_emnify_id_is_present_with_a_group(catalog: Catalog) -> None:
    for type_id in range(61):
        event_type = catalog.get(type_id)
        assert event_type is not None, type_id
        assert event_type.group and event_type.description
        assert event_type.scope in set(Scope) - {Scope.CUSTOM}


def test_markdown_tables_give_description_and_group(catalog: Catalog, reference: Path) -> None:
    tables = markdown_tables(reference)
    assert len(tables) == 43
    for type_id, (description, group) in tables.items():
        event_type = catalog.get(type_id)
        assert event_type is not None
        assert (event_type.description, event_type.group) == (description, group)
        assert "emnify" in event_type.catalogues


def test_onece_event_types_table(catalog: Catalog, reference: Path) -> None:
    table = onece_table(reference, "Event ID | Description |")
    assert {4, 17, 60} <= set(table) and len(table) == 34
    for type_id, description in table.items():
        event_type = catalog.get(type_id)
        assert event_type is not None, type_id
        assert "1nce" in event_type.catalogues
        assert description == (event_type.onece_description or event_type.description)
    assert catalog.describe(4) == "Update PDP Context"
    assert catalog.describe(17) == "Self-Signup"


def test_onece_description_only_where_spelling_differs(catalog: Catalog) -> None:
    differing = [t for t in catalog.types() if t.onece_description is not None]
    assert differing, "1NCE spells several types differently"
    for event_type in differing:
        assert "1nce" in event_type.catalogues
        assert event_type.onece_description != event_type.description
    twelve = catalog.get(12)
    assert twelve is not None
    assert (twelve.description, twelve.onece_description) == (
        "Organisation blocked",
        "Organization blocked",
    )


def test_onece_severity_and_source_tables_normalise(reference: Path) -> None:
    severities = onece_table(reference, "Severity ID | Description |")
    assert severities == {0: "INFO", 1: "WARNING", 2: "CRITICAL"}
    for type_id, text in severities.items():
        assert normalise_severity(text) == type_id
    sources = onece_table(reference, "ID | Description |")
    assert sources == {0: "Network", 1: "Policy Control", 2: "API"}
    for type_id, text in sources.items():
        assert normalise_source(text) == type_id


def test_defaults_match_markdown_examples(catalog: Catalog, reference: Path) -> None:
    seen = observed(markdown_examples(reference))
    assert set(markdown_tables(reference)) - set(seen) == {7, 10}  # no example in the doc
    for type_id, records in seen.items():
        event_type = catalog.get(type_id)
        assert event_type is not None
        if type_id == ACCEPTED_SESSION_FIRST:
            assert defaults_of(event_type) == records[0]
        else:
            assert defaults_of(event_type) == expected_defaults(records), type_id
    # Noted disagreements: 3 (one accepted Info/Network/no-alert record against four
    # rejections Warn/Policy Control/alert: an accepted session is the normal case, so its
    # record gives the defaults, and a rejection says so explicitly) and 8 (API vs Policy
    # Control source, one each: the first wins).
    disagreeing = {type_id for type_id, records in seen.items() if len(set(records)) > 1}
    assert disagreeing == {3, 8}
    assert defaults_of(must_get(catalog, 3)) == (0, 0, False)
    assert defaults_of(must_get(catalog, 8)) == (0, 2, False)
    assert defaults_of(must_get(catalog, 7)) == (None, None, None)


def test_defaults_hold_with_onece_examples_added(catalog: Catalog, reference: Path) -> None:
    markdown = observed(markdown_examples(reference))
    onece = observed(onece_examples(reference))
    assert len(onece_examples(reference)) == 23
    for type_id, records in onece.items():
        event_type = catalog.get(type_id)
        assert event_type is not None
        combined = markdown.get(type_id, []) + records
        if type_id == ACCEPTED_SESSION_FIRST:
            continue
        assert defaults_of(event_type) == expected_defaults(combined), type_id


def test_example_type_descriptions_match(catalog: Catalog, reference: Path) -> None:
    for example in markdown_examples(reference) + onece_examples(reference):
        event_type = catalog.get(example["event_type"]["id"])
        assert event_type is not None
        assert example["event_type"]["description"] in {
            event_type.description,
            event_type.onece_description,
        }


def test_reserved_ids_are_listed_in_the_data_header(catalog: Catalog) -> None:
    raw = json.loads((files("herald.catalog") / "data" / "event_types.json").read_text("utf-8"))
    reserved = raw["header"]["reserved_ids"]
    assert reserved == [24, 35, 47]
    for type_id in reserved:
        assert str(type_id) in raw["header"]["comment"]
        event_type = catalog.get(type_id)
        assert event_type is not None
        assert (event_type.description, event_type.group) == (
            f"Reserved (emnify id {type_id})",
            "Reserved",
        )
        assert event_type.catalogues == ()
    assert [t.id for t in catalog.types() if t.group == "Reserved"] == reserved


# --- Stacuity -------------------------------------------------------------------------------


def test_every_stacuity_moniker_is_present_with_its_scope(
    catalog: Catalog, reference: Path
) -> None:
    rows = stacuity_table(reference)
    assert len(rows) == 46
    assert [m.moniker for m in catalog.monikers()] == [row[1] for row in rows]
    for name, moniker, scope in rows:
        entry = catalog.by_moniker(moniker)
        assert entry is not None, moniker
        assert (entry.name, entry.scope) == (name, STACUITY_SCOPES[scope])
    assert catalog.by_moniker("bundleactivated_b1") is not None
    assert catalog.by_moniker("bundleactivated_v1") is None


def test_each_moniker_maps_to_exactly_one_type_and_back(catalog: Catalog) -> None:
    listed = Counter(name for t in catalog.types() for name in t.monikers)
    assert set(listed) == {m.moniker for m in catalog.monikers()}
    assert set(listed.values()) == {1}
    for moniker in catalog.monikers():
        event_type = catalog.get(moniker.type_id)
        assert event_type is not None
        assert moniker.moniker in event_type.monikers
        assert "stacuity" in event_type.catalogues


def test_chosen_stacuity_equivalents(catalog: Catalog) -> None:
    def type_of(moniker: str) -> int:
        entry = catalog.by_moniker(moniker)
        assert entry is not None
        return entry.type_id

    assert type_of("endpointdatasessioncreated_v1") == 3
    assert type_of("endpointdatasessioncreatefailed_v1") == 1037  # its own: emnify folds it into 3
    assert type_of("endpointdatasessionmodified_v1") == 4
    assert type_of("endpointdatasessiondeleted_v1") == 5
    assert type_of("endpointprovisioningstatussetactive_v1") == 8
    assert type_of("endpointprovisioningstatussetsuspended_v1") == 9
    assert type_of("endpointprovisioningstatussetterminated_v1") == 10
    assert type_of("endpointpurged_v1") in {15, 16}
    assert type_of("endpointlocationupdated_v1") in {1, 2}
    assert catalog.moniker_for(3) == "endpointdatasessioncreated_v1"
    assert catalog.moniker_for(1) is None


def test_ids_from_1000_only_for_stacuity_only_types(catalog: Catalog) -> None:
    own = [m for m in catalog.monikers() if m.type_id >= 1000]
    assert sorted(m.type_id for m in own) == list(range(1000, 1000 + len(own)))
    assert len(own) == 38
    for event_type in catalog.types():
        if event_type.id >= 2000:  # the Herald platform block
            assert event_type.group == "Herald platform" and not event_type.catalogues
        elif event_type.id >= 1100:  # the generic types of unknown provider types
            assert event_type.group == "Unknown provider types" and not event_type.monikers
        elif event_type.id >= 1000:
            assert event_type.id < 1100
            assert event_type.catalogues == ("stacuity",)
            assert event_type.group.startswith("Stacuity: ")
            (moniker,) = event_type.monikers
            entry = catalog.by_moniker(moniker)
            assert entry is not None
            assert (event_type.description, event_type.scope) == (entry.name, entry.scope)
        else:
            assert event_type.id <= 60
            assert {"emnify", "1nce"} & set(event_type.catalogues) or event_type.group == "Reserved"
    account = catalog.get(1036)
    assert account is not None and account.group == "Stacuity: Customer Account"


# --- scopes, custom codes, helpers ----------------------------------------------------------


def test_scopes(catalog: Catalog) -> None:
    assert [s.value for s in Scope] == [
        "endpoint",
        "sim",
        "user",
        "routing_target",
        "organisation",
        "custom",
    ]
    expected = {
        3: Scope.ENDPOINT,
        2: Scope.ENDPOINT,
        8: Scope.SIM,
        10: Scope.SIM,
        6: Scope.USER,
        41: Scope.USER,
        12: Scope.ORGANISATION,
        32: Scope.ORGANISATION,
        1023: Scope.ROUTING_TARGET,
        1033: Scope.ORGANISATION,
    }
    for type_id, scope in expected.items():
        event_type = catalog.get(type_id)
        assert event_type is not None and event_type.scope is scope, type_id
    assert all(t.scope is not Scope.CUSTOM for t in catalog.types())


def test_custom_code_rules(catalog: Catalog) -> None:
    assert CUSTOM_CODE_MIN == 10000
    assert catalog.is_custom(10000) and catalog.is_custom(123456)
    assert not catalog.is_custom(9999) and not catalog.is_custom(3)
    assert catalog.is_known(10000) and catalog.is_known(3) and catalog.is_known(1000)
    assert not catalog.is_known(9999) and not catalog.is_known(61) and not catalog.is_known(-1)
    assert catalog.get(10001) is None
    assert catalog.describe(10001) == "Custom event 10001"
    assert catalog.describe(3) == "Create PDP Context"
    assert catalog.moniker_for(10001) is None
    assert max(t.id for t in catalog.types()) < CUSTOM_CODE_MIN


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (2, 2),
        (3, None),
        (True, None),
        ("INFO", 0),
        ("Info", 0),
        ("warn", 1),
        ("WARN", 1),
        ("WARNING", 1),
        (" Critical ", 2),
        ("1", 1),
        ("7", None),
        ("error", None),
    ],
)
def test_normalise_severity(value: int | str, expected: int | None) -> None:
    assert normalise_severity(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, 1),
        (5, None),
        ("Network", 0),
        ("NETWORK", 0),
        ("Policy Control", 1),
        ("policy control", 1),
        ("POLICY_CONTROL", 1),
        ("api", 2),
        ("API", 2),
        ("2", 2),
        ("", None),
    ],
)
def test_normalise_source(value: int | str, expected: int | None) -> None:
    assert normalise_source(value) == expected


def test_level_tables(catalog: Catalog) -> None:
    assert SEVERITIES == {0: "Info", 1: "Warn", 2: "Critical"}
    assert SOURCES == {0: "Network", 1: "Policy Control", 2: "API"}
    assert CRITICALITIES == {
        0: "Not applicable",
        1: "Critical",
        2: "High",
        3: "Medium",
        4: "Low",
        5: "Trivial",
    }
    assert catalog.severities() == [
        {"id": 0, "description": "Info"},
        {"id": 1, "description": "Warn"},
        {"id": 2, "description": "Critical"},
    ]
    assert catalog.sources() == [
        {"id": 0, "description": "Network"},
        {"id": 1, "description": "Policy Control"},
        {"id": 2, "description": "API"},
    ]
    assert [c["id"] for c in catalog.criticalities()] == [0, 1, 2, 3, 4, 5]


def test_as_dict_is_json_ready(catalog: Catalog) -> None:
    event_type = catalog.get(3)
    assert event_type is not None
    data = event_type.as_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["scope"] == "endpoint" and data["id"] == 3
    assert data["monikers"] == ["endpointdatasessioncreated_v1"]
    moniker = catalog.by_moniker("routingtargetavailable_v1")
    assert moniker is not None
    assert moniker.as_dict() == {
        "moniker": "routingtargetavailable_v1",
        "name": "Routing Target Available v1",
        "scope": "routing_target",
        "type_id": 1023,
    }


def test_types_sorted_and_loaded_once(catalog: Catalog) -> None:
    ids = [t.id for t in catalog.types()]
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    assert len([i for i in ids if i < 2000]) == 61 + 38 + 3  # 2000+: the Herald platform block
    assert load_catalog() is load_catalog()


def test_catalog_rejects_inconsistent_data() -> None:
    event_type = EventType(
        1000,
        "X",
        "Stacuity: Endpoint",
        ("stacuity",),
        None,
        None,
        None,
        None,
        Scope.ENDPOINT,
        ("x_v1",),
    )
    good = Moniker("x_v1", "X", Scope.ENDPOINT, 1000)
    assert Catalog([event_type], [good]).moniker_for(1000) == "x_v1"
    with pytest.raises(ValueError, match="names type"):
        Catalog([event_type], [good, Moniker("y_v1", "Y", Scope.ENDPOINT, 1000)])
    with pytest.raises(ValueError, match="duplicate event type"):
        Catalog([event_type, event_type], [good])
    with pytest.raises(ValueError, match="not mapped"):
        Catalog([event_type], [])
    custom = EventType(10000, "C", "Custom", (), None, None, None, None, Scope.CUSTOM, ())
    with pytest.raises(ValueError, match="system type"):
        Catalog([custom], [])


def test_every_type_is_explained(catalog: Catalog) -> None:
    """What happened, from the reference documents; the device's state where it changes."""
    for event_type in catalog.types():
        assert event_type.explanation, event_type.id
        assert event_type.as_dict()["explanation"] == event_type.explanation
    states = {t.id: t.state_after for t in catalog.types()}
    assert states[1] is not None and "Attached" in states[1]
    assert states[3] is not None and "Online" in states[3]
    assert states[5] is not None and "Attached" in states[5]
    assert states[15] is not None and "Offline" in states[15]
    assert states[31] is None  # an organisation's data: no device changes


def test_unknown_provider_types_fall_back_to_the_providers_generic_type(
    catalog: Catalog,
) -> None:
    assert catalog.provider_type("emnify", 3) == 3
    assert catalog.provider_type("1nce", 61) == UNKNOWN_TYPES["1nce"]
    assert catalog.provider_type("emnify", 1005) == UNKNOWN_TYPES["emnify"]  # not an emnify id
    assert catalog.provider_type("emnify", 10001) == UNKNOWN_TYPES["emnify"]
    for provider, type_id in UNKNOWN_TYPES.items():
        generic = catalog.get(type_id)
        assert generic is not None and provider in generic.catalogues
