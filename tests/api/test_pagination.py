"""The paging headers and the ``Link`` header of the event lists."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.datastructures import URL

from herald.api.pagination import page_headers
from herald.events.types import EventPage, EventQuery

PATH = "/api/v1/endpoint/5/event"


def request_url(query_string: str, path: str = PATH) -> URL:
    """The URL as Starlette builds ``request.url`` from an ASGI scope."""
    scope = {
        "type": "http",
        "scheme": "http",
        "server": ("127.0.0.1", 8080),
        "path": path,
        "query_string": query_string.encode("latin-1"),
        "headers": [(b"host", b"herald.test:8080")],
    }
    return URL(scope=scope)


def links(
    query_string: str, *, page: int, per_page: int, total: int | None, cursor: str | None = None
) -> dict[str, str]:
    """rel -> URL of the ``Link`` header for a list request (``{}`` without one)."""
    headers = page_headers(
        request_url(query_string),
        EventQuery(page=page, per_page=per_page, cursor=cursor),
        EventPage(items=[], total=total, next_cursor="c2" if cursor is not None else None),
        filter_echo="",
        sort_echo="-timestamp",
    )
    if "Link" not in headers:
        return {}
    found: dict[str, str] = {}
    for part in headers["Link"].split(", "):
        target, rel = part.split("; ")
        assert target[0] == "<" and target[-1] == ">" and rel.startswith('rel="')
        assert rel[5:-1] not in found
        found[rel[5:-1]] = target[1:-1]
    return found


def params(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


def test_links_keep_the_other_parameters_and_set_the_page() -> None:
    query = "q=type%3A3%7C5%2Cseverity%3A0&sort=-timestamp&per_page=10&page=2"
    got = links(query, page=2, per_page=10, total=25)
    assert list(got) == ["first", "prev", "next", "last"]
    base = "http://herald.test:8080/api/v1/endpoint/5/event"
    rest = "q=type%3A3%7C5%2Cseverity%3A0&sort=-timestamp&per_page=10"
    assert got == {
        "first": f"{base}?{rest}&page=1",
        "prev": f"{base}?{rest}&page=1",
        "next": f"{base}?{rest}&page=3",
        "last": f"{base}?{rest}&page=3",
    }
    for url in got.values():  # the filter survives decoding intact
        assert ("q", "type:3|5,severity:0") in params(url)


def test_page_one_has_no_prev_and_the_last_page_no_next() -> None:
    first = links("per_page=10", page=1, per_page=10, total=25)
    assert list(first) == ["first", "next", "last"]
    assert params(first["next"]) == [("per_page", "10"), ("page", "2")]
    assert params(first["last"]) == [("per_page", "10"), ("page", "3")]

    last = links("per_page=10&page=3", page=3, per_page=10, total=25)
    assert list(last) == ["first", "prev", "last"]
    assert params(last["prev"]) == [("per_page", "10"), ("page", "2")]
    assert params(last["last"]) == [("per_page", "10"), ("page", "3")]


def test_a_single_page_and_an_empty_list_link_only_first_and_last() -> None:
    for total in (0, 7, 10):
        got = links("", page=1, per_page=10, total=total)
        assert list(got) == ["first", "last"]
        assert params(got["first"]) == params(got["last"]) == [("page", "1")]


def test_a_page_past_the_end_links_back_to_the_last_page() -> None:
    got = links("page=99&per_page=10", page=99, per_page=10, total=25)
    assert list(got) == ["first", "prev", "last"]
    assert params(got["prev"]) == [("per_page", "10"), ("page", "3")]


def test_repeated_blank_and_non_ascii_parameters_are_kept() -> None:
    query = "tags=a&description=&tags=b&page=2&endpoint=caf%C3%A9+17&page=5"
    got = links(query, page=2, per_page=10, total=100)
    kept = [("tags", "a"), ("description", ""), ("tags", "b"), ("endpoint", "café 17")]
    assert params(got["next"]) == [*kept, ("page", "3")]  # every old page value replaced
    assert "endpoint=caf%C3%A9+17" in got["next"]


def test_cursor_pages_link_only_the_next_cursor() -> None:
    got = links("per_page=7&cursor=c1&type=3", page=1, per_page=7, total=None, cursor="c1")
    assert list(got) == ["next"]
    assert params(got["next"]) == [("per_page", "7"), ("type", "3"), ("cursor", "c2")]
    assert links("per_page=7", page=1, per_page=7, total=None) == {}


_text = st.text(st.characters(codec="utf-8"), max_size=6)


@settings(max_examples=200, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.sampled_from(["page", "cursor", "q", "a b", "é", ""]), _text)),
    page=st.integers(1, 12),
    total=st.integers(0, 120),
)
def test_links_are_what_starlettes_include_query_params_gives(
    pairs: list[tuple[str, str]], page: int, total: int
) -> None:
    """Parsing the query once changes no link: each equals the URL with that one parameter
    set through ``URL.include_query_params``, as the links were built before."""
    query_string = urlencode(pairs)
    url = request_url(query_string)
    got = links(query_string, page=page, per_page=10, total=total)
    pages = max(1, -(-total // 10))
    expected = {"first": 1, "prev": min(page - 1, pages), "next": page + 1, "last": pages}
    for rel, target in got.items():
        assert target == str(url.include_query_params(page=expected[rel]))
    cursor_links = links(query_string, page=1, per_page=10, total=None, cursor="c1")
    assert cursor_links == {"next": str(url.include_query_params(cursor="c2"))}
