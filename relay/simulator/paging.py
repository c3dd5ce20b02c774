"""Clever's range paging over a sorted list of ids, and the envelope that carries a page.

Clever pages by id (``starting_after``, ``ending_before``, ``ending_before=last``), always
returning items in ascending id order. The same rules serve the events feed and every Data API
list, so they live here once. Pages are assembled by joining pre-encoded bytes: the simulator
must serve 20,000+ events/s from one process, which rules out re-encoding records per request.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import msgspec

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

DEFAULT_LIMIT = 100
MAX_LIMIT = 10000
CURSOR_PARAMS = frozenset(("starting_after", "ending_before"))


@dataclass(frozen=True, kw_only=True)
class PageRequest:
    """The paging part of a list request, already validated."""

    limit: int = DEFAULT_LIMIT
    starting_after: str | None = None
    ending_before: str | None = None
    """An id, or ``"last"`` for the end of the list."""

    @property
    def backward(self) -> bool:
        """Whether the page is the ``limit`` items just before ``ending_before``."""
        return self.ending_before is not None and self.starting_after is None


def select(
    ids: Sequence[str],
    page: PageRequest,
    *,
    lo: int = 0,
    match: Callable[[int], bool] | None = None,
) -> list[int]:
    """Positions in ``ids`` (sorted ascending) that make up one page, ascending.

    Args:
        ids: the sorted ids of every item, hidden ones included.
        page: the paging parameters.
        lo: the first visible position (items before it expired).
        match: an optional filter on positions (record type, school, role).
    """
    n = len(ids)
    begin = lo if page.starting_after is None else max(lo, bisect_right(ids, page.starting_after))
    end = n
    if page.ending_before is not None and page.ending_before != "last":
        end = max(lo, bisect_left(ids, page.ending_before))
    if page.backward:
        if match is None:
            return list(range(max(begin, end - page.limit), end))
        down = _scan_down(end, begin, match, page.limit)
        down.reverse()
        return down
    if match is None:
        return list(range(begin, min(end, begin + page.limit)))
    found: list[int] = []
    for i in range(begin, end):
        if match(i):
            found.append(i)
            if len(found) == page.limit:
                break
    return found


def _scan_down(end: int, begin: int, match: Callable[[int], bool], limit: int) -> list[int]:
    found: list[int] = []
    for i in range(end - 1, begin - 1, -1):
        if match(i):
            found.append(i)
            if len(found) == limit:
                break
    return found


def links(path: str, params: list[tuple[str, str]], first: str | None, last: str | None) -> bytes:
    """The encoded ``links`` array: ``self`` always, ``next``/``prev`` when the page has items.

    Links are relative and keep every non-cursor parameter (``limit``, ``record_type``, ...).
    After an empty page there is nothing to point at, so only ``self`` is given; the end of a
    feed is always an empty ``data`` array (docs/clever-api.md).
    """
    kept = [(k, v) for k, v in params if k not in CURSOR_PARAMS]
    out = [{"rel": "self", "uri": _uri(path, params)}]
    if last is not None:
        out.append({"rel": "next", "uri": _uri(path, [*kept, ("starting_after", last)])})
    if first is not None:
        out.append({"rel": "prev", "uri": _uri(path, [*kept, ("ending_before", first)])})
    return msgspec.json.encode(out)


def _uri(path: str, params: list[tuple[str, str]]) -> str:
    return f"{path}?{urlencode(params)}" if params else path


def envelope(items: list[bytes], links_json: bytes) -> bytes:
    """``{"data":[...items...],"links":[...]}`` from already-encoded items."""
    return b'{"data":[' + b",".join(items) + b'],"links":' + links_json + b"}"


def item(body: bytes, uri: str) -> bytes:
    """One list item ``{"data": <record>, "uri": "/v3.0/<type>/<id>"}`` from encoded bytes."""
    return b'{"data":' + body + b',"uri":"' + uri.encode() + b'"}'
