"""Clever's v3.0 Data API lists, for ``clever-relay sync`` (a CleverClient with list paging).

Same token, rate limiter and error mapping as the poller's
:class:`~relay.clever.client.CleverClient` (this subclass only adds the list call), so a sync
honours Clever's limits exactly like polling.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

import msgspec

from relay.clever.client import CleverClient
from relay.errors import CleverError, PageTooLarge

if TYPE_CHECKING:
    from collections.abc import Mapping


class _Item(msgspec.Struct, frozen=True):
    data: msgspec.Raw


class _Link(msgspec.Struct, frozen=True):
    rel: str
    uri: str


class _Page(msgspec.Struct, frozen=True):
    data: list[_Item]
    links: list[_Link] = []


class DataPage(msgspec.Struct, frozen=True):
    """One page of records (raw v3 JSON each) and the parameters of its ``next`` link."""

    records: list[bytes]
    next_params: dict[str, str] | None


_page_decoder = msgspec.json.Decoder(_Page)


def next_params(links: list[_Link]) -> dict[str, str] | None:
    """The query of the ``next`` link (Clever's links are relative, version included)."""
    for link in links:
        if link.rel == "next":
            return dict(parse_qsl(urlsplit(link.uri).query))
    return None


class DataClient(CleverClient):
    """:class:`CleverClient` plus ``GET /v3.0/<record_type>`` list pages."""

    async def list_page(self, record_type: str, params: Mapping[str, str]) -> DataPage:
        """One page of ``/v3.0/<record_type>`` (``users``, ``sections`` ...).

        Raises:
            CleverError: transient failure; retry later.
            CleverAuthError: the token was refused.
            PageTooLarge: ``limit`` is too large (413).
        """
        path = f"/{record_type}"
        status, body = await self._get(path, params)
        if status == 413:
            raise PageTooLarge(int(params.get("limit", "0")))
        self._raise_for_status(status, f"{self.api_prefix}{path}")
        try:
            page = _page_decoder.decode(body)
        except msgspec.DecodeError as exc:
            raise CleverError(
                "malformed", f"malformed {record_type} page: {exc}", status=status
            ) from None
        records = [bytes(item.data) for item in page.data]
        return DataPage(records, next_params(page.links) if records else None)
