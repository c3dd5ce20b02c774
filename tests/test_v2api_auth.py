"""The v2 API's key check (CONTRACT §9): what a presented ``Authorization`` header maps to."""

from __future__ import annotations

import pytest

from relay.config import validate
from relay.errors import ConfigError
from relay.v2api.auth import Authenticator


class TestAuthenticator:
    """``Authenticator.district``: a district for a configured key, None for anything else."""

    def test_authenticator_refuses_non_utf8_header_bytes(self) -> None:
        """Header bytes that are not UTF-8 (kept by aiohttp as surrogates) are a wrong key."""
        auth = Authenticator([("c", "d1", "v2key-with-at-least-32-characters")])
        assert auth.district("Bearer v2k\udcff\udcfey") is None
        assert auth.district("Bearer \udce9") is None
        assert auth.district("Bearer v2key-with-at-least-32-characters") == "d1"

    def test_authenticator_ignores_whitespace_around_a_configured_key(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A key read from the environment with a trailing newline still matches the header."""
        monkeypatch.setenv("V2_KEY_TEST", "v2key-with-at-least-32-characters\n")
        cfg = validate(
            {
                "relay": {"components": ["http", "v2api"]},
                "clever": {"districts": [{"id": "d1", "token": "clever-token"}]},
                "v2api": {"clients": [{"name": "c", "district": "d1", "token_env": "V2_KEY_TEST"}]},
            }
        )
        auth = Authenticator.from_config(cfg)
        assert auth.district("Bearer v2key-with-at-least-32-characters") == "d1"
        assert auth.district("Bearer clever-token") is None

    def test_authenticator_refuses_a_clever_token_read_with_a_newline(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A v2 key equal to a Clever token is refused even when the token's variable ends in a
        newline."""
        monkeypatch.setenv("CLEVER_TOKEN_TEST", "shared-key-also-a-clever-token-0001\n")
        cfg = validate(
            {
                "relay": {"components": ["http", "v2api"]},
                "clever": {"districts": [{"id": "d1", "token_env": "CLEVER_TOKEN_TEST"}]},
                "v2api": {
                    "clients": [
                        {
                            "name": "c",
                            "district": "d1",
                            "token": "shared-key-also-a-clever-token-0001",
                        }
                    ]
                },
            }
        )
        with pytest.raises(ConfigError) as info:
            Authenticator.from_config(cfg)
        assert info.value.problems == ["v2api.clients[c]: the key must not be a Clever token"]

    def test_authenticator_refuses_short_keys_naming_each(self) -> None:
        """Keys under 32 characters are refused, one line per client, never quoting the key."""
        cfg = validate(
            {
                "relay": {"components": ["http", "v2api"]},
                "clever": {"districts": [{"id": "d1", "token": "clever-token"}]},
                "v2api": {
                    "clients": [
                        {"name": "a", "district": "d1", "token": "a"},
                        {"name": "ok", "district": "d1", "token": "k" * 32},
                        {"name": "b", "district": "d1", "token": "b" * 31},
                    ]
                },
            }
        )
        with pytest.raises(ConfigError) as info:
            Authenticator.from_config(cfg)
        assert info.value.problems == [
            "v2api.clients[a]: key too short (1 characters, at least 32)",
            "v2api.clients[b]: key too short (31 characters, at least 32)",
        ]
