"""problem_for: each service error answers one status, with its title, detail and fields."""

from __future__ import annotations

from herald.api.problems import problem_for
from herald.errors import DomainError, Forbidden, Invalid, Malformed, NotFound, RetryLater, TooMany


def test_each_error_class_answers_its_status_and_only_a_wait_gives_retry_after() -> None:
    cases: list[tuple[DomainError, int]] = [
        (Malformed.at("page", "must be a whole number"), 400),
        (Invalid.at("filter.type", "unknown type", title="Invalid event handler"), 422),
        (Forbidden("this token acts only for its own"), 403),
        (NotFound("no event handler 7"), 404),
        (TooMany("this token has 2 live streams open", title="Too many live streams"), 429),
    ]
    for error, status in cases:
        problem = problem_for(error)
        assert (problem.status, problem.title, problem.headers) == (status, error.title, {})
    waited = problem_for(RetryLater("busy", title="Too many queries", retry_after=3))
    assert (waited.status, waited.headers) == (429, {"Retry-After": "3"})


def test_a_field_error_names_the_field_and_the_reason() -> None:
    problem = problem_for(Invalid.at("organisation_id", "unknown organisation"))
    assert problem.title == "Invalid request"
    assert problem.detail == "organisation_id: unknown organisation"
    assert problem.errors == [{"field": "organisation_id", "reason": "unknown organisation"}]
    assert problem_for(Forbidden("not yours")).errors == []
