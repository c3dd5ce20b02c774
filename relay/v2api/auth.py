"""v2 API keys: the relay's own, one per district (docs/v2-api.md).

A request carries ``Authorization: Bearer <key>``; the key is compared in constant time
(``hmac.compare_digest``) with every configured key, always all of them, so timing says nothing
about which key or how much of it matched. Clever's district tokens are never accepted here: a
configured v2 key equal to a Clever token is refused at start-up.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING

from relay.errors import ConfigError
from relay.logs import register_secret

if TYPE_CHECKING:
    from relay.config import Config


MIN_KEY_LENGTH = 32
"""Characters a v2 key has at least (a guessable key would open a district's data)."""


def _key_problem(key: str, clever: set[str]) -> str | None:
    """What is wrong with a configured v2 key (never quoting it), or None."""
    if not key:
        return "empty key"
    if key in clever:
        return "the key must not be a Clever token"
    if len(key) < MIN_KEY_LENGTH:
        return f"key too short ({len(key)} characters, at least {MIN_KEY_LENGTH})"
    return None


@dataclass(frozen=True, slots=True)
class _Client:
    name: str
    district: str
    key: bytes


class Authenticator:
    """Maps a presented key to the district it was issued for."""

    def __init__(self, clients: list[tuple[str, str, str]]) -> None:
        self._clients = [_Client(name, district, key.encode()) for name, district, key in clients]

    @classmethod
    def from_config(cls, cfg: Config) -> Authenticator:
        """Resolve every ``[[v2api.clients]]`` key (registered as secrets for the logs).

        Raises:
            ConfigError: a key is missing, empty, shorter than :data:`MIN_KEY_LENGTH`, or equal
                to a Clever district token (one line per key).
        """
        clever = set()
        for district in cfg.clever.districts:
            try:
                clever.add(district.resolve_token().strip())
            except ConfigError:
                continue
        clients = []
        problems: list[str] = []
        for client in cfg.v2api.clients:
            # Surrounding whitespace (a newline in an environment variable) can never arrive in
            # a header, so a key kept with it would refuse every request.
            key = client.resolve_token().strip()
            register_secret(key)
            if problem := _key_problem(key, clever):
                problems.append(f"v2api.clients[{client.name}]: {problem}")
            clients.append((client.name, client.district, key))
        if problems:
            raise ConfigError(problems)
        return cls(clients)

    def district(self, authorization: str | None) -> str | None:
        """The district of the key in an ``Authorization`` header; None if not a valid key."""
        if authorization is None:
            return None
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return None
        # aiohttp keeps non-UTF-8 header bytes as surrogates; give them back, never fail.
        given = presented.strip().encode("utf-8", "surrogateescape")
        found: str | None = None
        for client in self._clients:
            if hmac.compare_digest(given, client.key) and found is None:
                found = client.district
        return found
