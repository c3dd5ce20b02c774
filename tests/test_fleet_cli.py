"""``clever-relay districts list`` and ``sync --district`` for a discovered district."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from relay.cli import main
from relay.config import validate
from relay.simulator import SimOptions, World, running_simulator
from tests.fleet_support import control_entries, fleet_cfg
from tests.test_poller import PREFIX, running_poller, wait_for

if TYPE_CHECKING:
    from pathlib import Path

    import redis.asyncio as aioredis


def _toml(tree: dict[str, Any]) -> str:
    """The little TOML these configs need: tables of strings, numbers and string lists."""
    lines: list[str] = []

    def table(name: str, body: dict[str, Any]) -> None:
        lines.append(f"[{name}]")
        nested = {k: v for k, v in body.items() if isinstance(v, dict)}
        arrays = {
            k: v for k, v in body.items() if isinstance(v, list) and v and isinstance(v[0], dict)
        }
        for key, value in body.items():
            if key in nested or key in arrays:
                continue
            lines.append(f"{key} = {_value(value)}")
        for key, items in arrays.items():
            for item in items:
                lines.append(f"[[{name}.{key}]]")
                lines.extend(f"{k} = {_value(v)}" for k, v in item.items())
        for key, value in nested.items():
            table(f"{name}.{key}", value)

    for name, body in tree.items():
        table(name, body)
    return "\n".join(lines) + "\n"


def _value(value: object) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return str(value).lower() if isinstance(value, bool) else str(value)


async def _onboarded(redis: aioredis.Redis, n: int) -> bool:
    return len(await control_entries(redis, "relay.district_onboarded")) >= n


class TestFleetCli:
    async def test_districts_list_and_sync_of_a_discovered_district(
        self,
        redis_url: str,
        redis_client: aioredis.Redis,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """The list shows each district's source, phase and onboarding; sync re-reads its token."""
        world = World.generate(8, districts=2, events_per_district=40)
        static, found = world.districts
        pinned = [{"id": static.id, "token": static.token, "start": "earliest"}]
        async with running_simulator(world, SimOptions()) as sim:
            tree = fleet_cfg(redis_url, sim.base_url, static=pinned)
            config = tmp_path / "relay.toml"
            config.write_text(_toml(tree))
            async with running_poller(validate(tree)):
                await wait_for(lambda: _onboarded(redis_client, 1))
                await wait_for(lambda: _cursor_is(redis_client, static.id, static.feed.last_id))
            capsys.readouterr()
            assert (
                await asyncio.to_thread(main, ["districts", "list", "--config", str(config)]) == 0
            )
            listed = capsys.readouterr().out.splitlines()
            show = ["cursor", "show", "--config", str(config)]
            assert await asyncio.to_thread(main, show) == 0
            cursors = capsys.readouterr().out.splitlines()
            before = sim.stats.token(found.id).requests
            code = await asyncio.to_thread(
                main, ["sync", "--config", str(config), "--district", found.id]
            )
            requests = sim.stats.token(found.id).requests - before
        rows = [line.split("\t") for line in listed]
        onboarded = (await control_entries(redis_client, "relay.district_onboarded"))[0]
        total = sum(onboarded["counts"].values())
        assert [row[:4] + row[5:] for row in rows] == [
            ["district", "source", "phase", "cursor", "onboarding"],
            [static.id, "static", "polling", static.feed.last_id, "-"],
            [found.id, "discovered", "polling", found.feed.last_id, f"done {total}"],
        ]
        assert cursors == [
            f"{static.id}\t{static.feed.last_id}",
            f"{found.id}\t{found.feed.last_id}",
        ]
        assert (code, requests) == (0, 13)  # newest event id; six lists, each one page + empty


class TestFleetCheckConfig:
    def test_check_config_names_an_unset_client_secret(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """check-config reads the discovery credentials: an unset variable is one line, exit 2."""
        monkeypatch.delenv("FLEET_TEST_SECRET", raising=False)
        config = tmp_path / "relay.toml"
        config.write_text(
            '[clever.discovery]\nclient_id = "app"\nclient_secret_env = "FLEET_TEST_SECRET"\n'
        )
        assert main(["check-config", "--config", str(config)]) == 2
        assert capsys.readouterr().err.splitlines() == [
            "clever.discovery.client_secret_env: variable FLEET_TEST_SECRET is unset"
        ]


async def _cursor_is(redis: aioredis.Redis, district: str, cursor: str | None) -> bool:
    value: Any = await redis.get(f"{PREFIX}:cursor:{district}")
    return value is not None and bytes(value).decode() == cursor
