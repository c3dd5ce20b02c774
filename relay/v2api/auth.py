"""v2 API keys: the relay's own, one per district (CONTRACT §9).

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
            ConfigError: a key is missing, empty, or equal to a Clever district token.
        """
        clever = set()
        for district in cfg.clever.districts:
            try:
                clever.add(district.resolve_token().strip())
            except ConfigError:
                continue
        clients = []
        for client in cfg.v2api.clients:
            # Surrounding whitespace (a newline in an environment variable) can never arrive in
            # a header, so a key kept with it would refuse every request.
            key = client.resolve_token().strip()
            if not key:
                raise ConfigError([f"v2api.clients[{client.name}]: empty key"])
            if key in clever:
                raise ConfigError(
                    [f"v2api.clients[{client.name}]: the key must not be a Clever token"]
                )
            register_secret(key)
            clients.append((client.name, client.district, key))
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
