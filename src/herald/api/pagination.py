"""Paging headers as emnify sends them, and an RFC 8288 ``Link`` header."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlencode

from starlette.datastructures import URL

from herald.events.types import EventPage, EventQuery


def _header_safe(value: str) -> str:
    """Printable ASCII as is, the rest percent-encoded: a header cannot carry it (was a 500)."""
    if value.isascii() and value.isprintable():
        return value
    return quote(value, safe="".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%"))


class _Links:
    """``Link`` header values for one request URL, its query string parsed once.

    Each link is the request URL with one parameter set: the parameter's old values dropped
    and the new one appended last, the other parameters kept in order (what Starlette's
    ``URL.include_query_params`` gives, without parsing the query again for every link).
    """

    def __init__(self, url: URL) -> None:
        parts = url.components
        self._head = parts._replace(query="", fragment="").geturl()
        self._tail = f"#{parts.fragment}" if parts.fragment else ""
        self._params = parse_qsl(parts.query, keep_blank_values=True)
        self._others: dict[str, str] = {}  # per parameter set: the rest of the query, encoded

    def link(self, rel: str, key: str, value: str | int) -> str:
        if key not in self._others:
            self._others[key] = urlencode([(k, v) for k, v in self._params if k != key])
        query = "&".join(filter(None, (self._others[key], urlencode([(key, str(value))]))))
        return f'<{self._head}?{query}{self._tail}>; rel="{rel}"'


def page_headers(
    url: URL, query: EventQuery, page: EventPage, filter_echo: str, sort_echo: str
) -> dict[str, str]:
    """``X-Total-Count``, ``X-Total-Pages``, ``X-Current-Page``, ``X-Count-Per-Page``, ``Link``."""
    headers = {"X-Count-Per-Page": str(query.per_page), "X-Sort": _header_safe(sort_echo)}
    if filter_echo:
        headers["X-Filter"] = _header_safe(filter_echo)
    links: list[str] = []
    link = _Links(url).link
    if page.total is not None:
        pages = max(1, -(-page.total // query.per_page))
        headers["X-Total-Count"] = str(page.total)
        headers["X-Total-Pages"] = str(pages)
        headers["X-Current-Page"] = str(query.page)
        links.append(link("first", "page", 1))
        if query.page > 1:
            links.append(link("prev", "page", min(query.page - 1, pages)))
        if query.page < pages:
            links.append(link("next", "page", query.page + 1))
        links.append(link("last", "page", pages))
    if page.next_cursor:
        headers["X-Next-Cursor"] = page.next_cursor
        if query.cursor is not None:
            links.append(link("next", "cursor", page.next_cursor))
    if links:
        headers["Link"] = ", ".join(links)
    return headers
