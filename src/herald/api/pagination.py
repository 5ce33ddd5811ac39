"""Paging headers as emnify sends them, and an RFC 8288 ``Link`` header."""

from __future__ import annotations

from urllib.parse import quote

from starlette.datastructures import URL

from herald.store import EventPage, EventQuery


def _header_safe(value: str) -> str:
    """Printable ASCII as is, the rest percent-encoded: a header cannot carry it (was a 500)."""
    if value.isascii() and value.isprintable():
        return value
    return quote(value, safe="".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%"))


def _link(url: URL, rel: str, **params: str | int) -> str:
    return f'<{url.include_query_params(**params)}>; rel="{rel}"'


def page_headers(
    url: URL, query: EventQuery, page: EventPage, filter_echo: str, sort_echo: str
) -> dict[str, str]:
    """``X-Total-Count``, ``X-Total-Pages``, ``X-Current-Page``, ``X-Count-Per-Page``, ``Link``."""
    headers = {"X-Count-Per-Page": str(query.per_page), "X-Sort": _header_safe(sort_echo)}
    if filter_echo:
        headers["X-Filter"] = _header_safe(filter_echo)
    links = []
    if page.total is not None:
        pages = max(1, -(-page.total // query.per_page))
        headers["X-Total-Count"] = str(page.total)
        headers["X-Total-Pages"] = str(pages)
        headers["X-Current-Page"] = str(query.page)
        links.append(_link(url, "first", page=1))
        if query.page > 1:
            links.append(_link(url, "prev", page=min(query.page - 1, pages)))
        if query.page < pages:
            links.append(_link(url, "next", page=query.page + 1))
        links.append(_link(url, "last", page=pages))
    if page.next_cursor:
        headers["X-Next-Cursor"] = page.next_cursor
        if query.cursor is not None:
            links.append(_link(url, "next", cursor=page.next_cursor))
    if links:
        headers["Link"] = ", ".join(links)
    return headers
