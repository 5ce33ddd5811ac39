"""The OpenAPI document is exact: valid, every ``$ref`` resolves, every operation has its
typed answer and problem+json errors, and a created handler links to its operations."""

from __future__ import annotations

from typing import Any

import pytest
from openapi_spec_validator import validate

from herald.api.app import create_app
from herald.api.openapi import ANSWERS, PROBLEM_JSON
from herald.config import Settings


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    database = tmp_path_factory.mktemp("openapi") / "herald.db"
    app = create_app(Settings(database_url=f"sqlite:///{database}", demo=False))
    built: dict[str, Any] = app.openapi()
    return built


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [node["$ref"]] if "$ref" in node else [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for item in node for r in _refs(item)]
    return []


def _operations(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{method.upper()} {path}", operation)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    ]


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)  # raises, naming the first error


def test_every_ref_resolves(document: dict[str, Any]) -> None:
    """Regression: POST /event's body named #/components/schemas/EventIn, which was absent."""
    names = set(document["components"]["schemas"])
    refs = set(_refs(document))
    assert "#/components/schemas/EventIn" in refs
    assert {ref for ref in refs if ref.rsplit("/", 1)[-1] not in names} == set()


def test_every_operation_has_its_answer_and_problem_errors(document: dict[str, Any]) -> None:
    operations = _operations(document)
    assert {label for label, _ in operations} - set(ANSWERS) == set()  # each one in the table
    for label, operation in operations:
        responses = operation["responses"]
        success = [code for code in responses if code.startswith("2")]
        assert len(success) == 1, label
        if success != ["204"]:
            (content,) = responses[success[0]]["content"].values()
            assert content["schema"], label
        for code, response in responses.items():
            if code.startswith(("4", "5")):
                assert list(response["content"]) == [PROBLEM_JSON], (label, code)
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas


def test_a_created_handler_links_to_its_operations(document: dict[str, Any]) -> None:
    operation_ids = {operation["operationId"] for _, operation in _operations(document)}
    created = document["paths"]["/api/v1/event_handler"]["post"]["responses"]["201"]
    links = created["links"]
    assert len(links) == 7
    for link in links.values():
        assert link["operationId"] in operation_ids
        assert link["parameters"] == {"handler_id": "$response.body#/id"}


def test_handlers_document_receiver_auth_headers_timeout_and_formats(
    document: dict[str, Any],
) -> None:
    """#34 point 5: what a webhook handler takes is in the document with its bounds."""
    schemas = document["components"]["schemas"]
    assert "stacuity" in schemas["HandlerIn"]["properties"]["format"]["enum"]
    assert schemas["BatchIn"]["properties"]["max_events"]["maximum"] == 10_000
    headers = schemas["SinkSettingsIn"]["properties"]["headers"]["anyOf"][0]
    assert headers["maxProperties"] == 10
    assert headers["propertyNames"]["maxLength"] == 64
    [(names, values)] = headers["patternProperties"].items()
    assert names == r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"  # a token (RFC 9110)
    assert (values["maxLength"], values["pattern"]) == (1024, r"^[\t\x20-\x7e]*$")
    timeout = schemas["SinkSettingsIn"]["properties"]["timeout_seconds"]["anyOf"][0]
    assert (timeout["minimum"], timeout["maximum"]) == (0.5, 60)
    credentials = schemas["CredentialsIn"]["properties"]
    assert "Bearer" in credentials["token"]["description"]
    assert "Basic" in credentials["username"]["description"]
    settings = schemas["HandlerOut"]["properties"]["settings"]["additionalProperties"]["anyOf"]
    assert {"type": "object", "additionalProperties": {"type": "string"}} in settings
