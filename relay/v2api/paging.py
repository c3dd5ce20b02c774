"""Clever's paging parameters, links and envelopes, as the v2 API answers them.

Clever pages by id: ``starting_after``, ``ending_before`` (``last`` = the end), ``limit`` (413
above 10000), items in ascending id order, and relative ``self``/``next``/``prev`` links that
keep every other parameter. Pages are built by joining already-encoded JSON (objects are stored
encoded), so serving a page never re-encodes records.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import msgspec
from aiohttp import web

from relay.errors import PageError

if TYPE_CHECKING:
    from collections.abc import Sequence

MAX_LIMIT = 10000
CURSOR_PARAMS = frozenset(("starting_after", "ending_before"))
LAST = "last"


@dataclass(frozen=True, slots=True)
class Page:
    """The paging part of a request, validated."""

    limit: int
    starting_after: str | None = None
    ending_before: str | None = None
    """An id, or :data:`LAST`."""

    @property
    def backward(self) -> bool:
        """The page is the ``limit`` items just before ``ending_before``."""
        return self.ending_before is not None and self.starting_after is None


def parse_page(request: web.Request, default_limit: int) -> Page:
    """Read ``limit``, ``starting_after`` and ``ending_before``.

    Raises:
        PageError: 400 for a malformed limit, 413 above :data:`MAX_LIMIT`.
    """
    text = request.query.get("limit")
    limit = default_limit
    if text is not None:
        try:
            limit = int(text)
        except ValueError:
            raise PageError(400, "limit must be an integer") from None
        if limit < 1:
            raise PageError(400, "limit must be at least 1")
        if limit > MAX_LIMIT:
            raise PageError(413, f"limit must be at most {MAX_LIMIT}")
    after = request.query.get("starting_after") or None
    before = request.query.get("ending_before") or None
    return Page(limit=limit, starting_after=after, ending_before=before)


def select_sorted(ids: Sequence[str], page: Page) -> list[str]:
    """One page of a small, sorted list of ids (object fields, derived relations)."""
    lo = 0
    hi = len(ids)
    if page.starting_after is not None:
        lo = bisect_right(ids, page.starting_after)
    if page.ending_before is not None and page.ending_before != LAST:
        hi = max(lo, bisect_left(ids, page.ending_before))
    if page.backward:
        return list(ids[max(lo, hi - page.limit) : hi])
    return list(ids[lo : min(hi, lo + page.limit)])


def links(request: web.Request, first: str | None, last: str | None) -> bytes:
    """The encoded ``links``: ``self`` always; ``next``/``prev`` when the page has items.

    As Clever: relative, with every non-cursor parameter kept (``limit``, ``record_type`` ...).
    """
    params = list(request.query.items())
    kept = [(k, v) for k, v in params if k not in CURSOR_PARAMS]
    path = request.path
    out = [{"rel": "self", "uri": _uri(path, params)}]
    if last is not None:
        out.append({"rel": "next", "uri": _uri(path, [*kept, ("starting_after", last)])})
    if first is not None:
        out.append({"rel": "prev", "uri": _uri(path, [*kept, ("ending_before", first)])})
    return msgspec.json.encode(out)


def self_link(request: web.Request) -> bytes:
    """The ``links`` of a single-object answer: just ``self``."""
    return msgspec.json.encode(
        [{"rel": "self", "uri": _uri(request.path, list(request.query.items()))}]
    )


def _uri(path: str, params: list[tuple[str, str]]) -> str:
    return f"{path}?{urlencode(params)}" if params else path


def item(body: bytes, uri: str) -> bytes:
    """One list item ``{"data": <object>, "uri": "<uri>"}``."""
    return b'{"data":' + body + b',"uri":"' + uri.encode() + b'"}'


def list_response(items: list[bytes], links_json: bytes) -> web.Response:
    """``{"data": [...], "links": [...]}``."""
    body = b'{"data":[' + b",".join(items) + b'],"links":' + links_json + b"}"
    return web.Response(body=body, content_type="application/json")


def joined_response(items: bytes, links_json: bytes) -> web.Response:
    """``{"data": [...], "links": [...]}`` from items already joined with commas."""
    body = b'{"data":[' + items + b'],"links":' + links_json + b"}"
    return web.Response(body=body, content_type="application/json")


def one_response(body: bytes, links_json: bytes) -> web.Response:
    """``{"data": <object>, "links": [...]}``."""
    return web.Response(
        body=b'{"data":' + body + b',"links":' + links_json + b"}", content_type="application/json"
    )


def error_response(status: int, message: str) -> web.Response:
    """Clever's error body ``{"message": ...}``."""
    return web.Response(
        body=msgspec.json.encode({"message": message}),
        status=status,
        content_type="application/json",
    )
