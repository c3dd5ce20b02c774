"""Teacher legacy ids fetched from Clever's Data API when the store has never seen the user.

v3 sections name teachers by v3 user id; v2 consumers need the teacher's legacy id
(docs/translation.md). The translator learns ids from the ``users.*`` events it translates; a
section that names a teacher it has not seen (the relay started at ``latest``, or the teacher
predates retention) costs one ``GET /v3.x/users/{id}`` (``[clever] api_version``) with the
district's token. Results are cached in the store by the caller. A failed look-up is never guessed
around: the caller holds the section event back and retries it, because an event emitted with a
wrong teacher id would be wrong forever.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import msgspec

from relay.clever.client import CleverClient
from relay.errors import CleverNotFound, ConfigError, RelayError
from relay.logs import get_logger

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    import aiohttp

    from relay.config import Config

log = get_logger("translator")

MAX_CONCURRENT_LOOKUPS = 8


class UserFetcher(Protocol):
    """Something that returns a v3 user's raw JSON (``CleverClient.get_user``)."""

    async def get_user(self, user_id: str) -> bytes:
        """The raw user JSON; raises a RelayError when it cannot."""
        ...


class _TeacherRole(msgspec.Struct, frozen=True):
    legacy_id: str | None = None


class _Roles(msgspec.Struct, frozen=True):
    teacher: _TeacherRole | None = None


class _User(msgspec.Struct, frozen=True):
    id: str
    roles: _Roles = _Roles()


_user_decoder = msgspec.json.Decoder(_User)


def teacher_legacy_id(user_json: bytes) -> str | None:
    """The v2 teacher id of a v3 user: ``roles.teacher.legacy_id`` (docs/translation.md).

    Returns None when the user has no teacher role or no legacy id (the mapping dead-letters a
    teacher without one too: a made-up id would mislead v2 consumers). Raises
    ``msgspec.DecodeError`` on a malformed user.
    """
    user = _user_decoder.decode(user_json)
    if user.roles.teacher is None:
        return None
    return user.roles.teacher.legacy_id or None


@dataclass
class LookupResult:
    """What one round of look-ups found, which ids are permanently unmappable, and which failed."""

    found: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    """User id -> reason the id can never be mapped (404, not a teacher): dead-letter."""
    failed: dict[str, str] = field(default_factory=dict)
    """User id -> reason of a transient failure (Clever down, token refused): retry later."""


class TeacherLookup:
    """Fetches teacher legacy ids per district with that district's token."""

    def __init__(
        self,
        *,
        cfg: Config,
        session: aiohttp.ClientSession,
        fetcher_factory: Callable[[str], UserFetcher] | None = None,
    ) -> None:
        self.cfg = cfg
        self.session = session
        self._factory = fetcher_factory or self._client_for
        self._fetchers: dict[str, UserFetcher] = {}
        self._gate = asyncio.Semaphore(MAX_CONCURRENT_LOOKUPS)

    def _client_for(self, district: str) -> UserFetcher:
        for entry in self.cfg.clever.districts:
            if entry.id == district:
                return CleverClient(
                    session=self.session,
                    base_url=self.cfg.clever.base_url,
                    district=district,
                    token=entry.resolve_token(),
                    timeout_s=self.cfg.clever.request_timeout_s,
                    rate_limit_reserve=self.cfg.clever.rate_limit_reserve,
                    api_version=self.cfg.clever.api_version,
                )
        raise ConfigError([f"clever.districts: district {district} is not configured"])

    async def fetch(self, district: str, user_ids: Iterable[str]) -> LookupResult:
        """Look up every id concurrently (bounded); never raises for a single id's failure."""
        result = LookupResult()
        ids = sorted(set(user_ids))
        if not ids:
            return result
        try:
            fetcher = self._fetchers.get(district) or self._factory(district)
        except ConfigError as exc:
            result.failed.update(dict.fromkeys(ids, str(exc)))
            return result
        self._fetchers[district] = fetcher
        async with asyncio.TaskGroup() as group:
            for user_id in ids:
                group.create_task(self._one(fetcher, district, user_id, result))
        return result

    async def _one(
        self, fetcher: UserFetcher, district: str, user_id: str, result: LookupResult
    ) -> None:
        async with self._gate:
            try:
                body = await fetcher.get_user(user_id)
                legacy = teacher_legacy_id(body)
            except CleverNotFound:
                result.missing[user_id] = f"teacher {user_id} not found in Clever"
                return
            except (RelayError, msgspec.DecodeError) as exc:
                log.warning(
                    "teacher_lookup_failed", district=district, user_id=user_id, error=str(exc)
                )
                result.failed[user_id] = f"teacher lookup failed: {exc}"
                return
        if legacy is None:
            result.missing[user_id] = f"user {user_id} has no teacher legacy_id"
        else:
            result.found[user_id] = legacy
