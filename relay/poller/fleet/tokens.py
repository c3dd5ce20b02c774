"""Clever's OAuth tokens endpoint: which districts authorized the app, with their tokens.

``GET <oauth_base_url>/oauth/tokens?owner_type=district`` with HTTP Basic (the app's client id
and secret) answers ``{"data": [{"id", "created", "owner": {"type", "id"}, "access_token",
"scopes"}], "links": [...]}``. Clever documents no paging for it; if a ``next`` link is given it
is followed (relative or absolute, on the same host), and a page that repeats an already seen
district ends the walk instead of looping. Records whose owner is not a district are ignored.
Tokens and the client secret never reach logs or errors.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import aiohttp
import msgspec

from relay.errors import CleverError, DiscoveryAuthError

if TYPE_CHECKING:
    from collections.abc import Mapping

TOKENS_PATH = "/oauth/tokens"
MAX_PAGES = 10_000
"""A walk longer than this is a paging loop on Clever's side, not a real list."""


class _Owner(msgspec.Struct, frozen=True):
    type: str
    id: str


class _TokenItem(msgspec.Struct, frozen=True):
    owner: _Owner
    access_token: str
    id: str = ""
    created: str = ""


class _Link(msgspec.Struct, frozen=True):
    rel: str
    uri: str


class _TokensPage(msgspec.Struct, frozen=True):
    data: list[_TokenItem]
    links: list[_Link] = []


_decoder = msgspec.json.Decoder(_TokensPage)


@dataclass(frozen=True)
class DistrictToken:
    """One district's active token as the list gives it (``repr`` hides the token)."""

    district: str
    token: str
    created: str

    def __repr__(self) -> str:
        """Never show the token."""
        return f"DistrictToken(district={self.district!r}, created={self.created!r})"


def basic_auth(client_id: str, client_secret: str) -> str:
    """The ``Authorization`` header value for HTTP Basic."""
    return "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()


class TokensClient:
    """Reads the whole district token list (every page)."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        oauth_base_url: str,
        client_id: str,
        client_secret: str,
        timeout_s: float,
    ) -> None:
        self.session = session
        self.base_url = oauth_base_url.rstrip("/")
        self._headers = {
            "Authorization": basic_auth(client_id, client_secret),
            "Accept": "application/json",
        }
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    def __repr__(self) -> str:
        """Never show the credentials."""
        return f"TokensClient(base_url={self.base_url!r})"

    async def districts(self, district: str | None = None) -> dict[str, DistrictToken]:
        """Every district's token (or only ``district``'s), by district id.

        Raises:
            DiscoveryAuthError: the client id or secret was refused.
            CleverError: a transient failure (timeout, 5xx, malformed body); retry later.
        """
        query = f"district={district}" if district else "owner_type=district"
        url: str | None = f"{self.base_url}{TOKENS_PATH}?{query}"
        found: dict[str, DistrictToken] = {}
        for _ in range(MAX_PAGES):
            if url is None:
                return found
            page = await self._page(url)
            fresh = [i for i in page.data if i.owner.type == "district"]
            if any(i.owner.id in found for i in fresh):
                return found  # a page repeating districts: Clever's paging looped; stop here
            found.update(
                {i.owner.id: DistrictToken(i.owner.id, i.access_token, i.created) for i in fresh}
            )
            url = self._next(url, page.links) if page.data else None
        raise CleverError("malformed", f"the token list did not end within {MAX_PAGES} pages")

    def _next(self, current: str, links: list[_Link]) -> str | None:
        for link in links:
            if link.rel == "next":
                target = urljoin(current, link.uri)
                # Same scheme and host: the credentials never go over a downgraded link.
                if urlsplit(target)[:2] == urlsplit(self.base_url)[:2]:
                    return target
        return None

    async def _page(self, url: str) -> _TokensPage:
        try:
            async with self.session.get(url, headers=self._headers, timeout=self._timeout) as resp:
                body = await resp.read()
                status = resp.status
        except TimeoutError:
            raise CleverError("timeout", "no answer from Clever's token list") from None
        except aiohttp.ClientError as exc:
            raise CleverError(
                "connect", f"cannot reach Clever's token list: {type(exc).__name__}"
            ) from None
        return _decode(status, body)


def _decode(status: int, body: bytes) -> _TokensPage:
    if status in (401, 403):
        raise DiscoveryAuthError(status)
    if status != 200:
        kind = "5xx" if status >= 500 else "4xx"
        raise CleverError(kind, f"Clever answered {status} to the token list", status=status)
    try:
        return _decoder.decode(body)
    except msgspec.DecodeError:
        raise CleverError("malformed", "malformed token list from Clever", status=status) from None


def token_map(tokens: Mapping[str, DistrictToken]) -> dict[str, str]:
    """District id → token (for comparing two reads)."""
    return {district: item.token for district, item in tokens.items()}
