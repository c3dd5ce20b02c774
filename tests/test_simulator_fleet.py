"""The simulator's tokens endpoint and its run-time district changes (add, remove, rotate)."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from relay.simulator import SimOptions, World, running_simulator

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from relay.simulator import RunningSimulator


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


APP = _basic("sim_client_id", "sim_client_secret")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session closed after the test."""
    async with aiohttp.ClientSession() as client:
        yield client


async def _tokens(
    session: aiohttp.ClientSession,
    sim: RunningSimulator,
    path: str = "/oauth/tokens?owner_type=district",
    auth: str | None = APP,
) -> tuple[int, Any]:
    headers = {} if auth is None else {"Authorization": auth}
    async with session.get(sim.base_url + path, headers=headers) as resp:
        return resp.status, await resp.json()


async def _all_tokens(session: aiohttp.ClientSession, sim: RunningSimulator) -> dict[str, str]:
    out: dict[str, str] = {}
    path: str | None = "/oauth/tokens?owner_type=district"
    while path is not None:
        status, body = await _tokens(session, sim, path)
        assert status == 200
        out.update({item["owner"]["id"]: item["access_token"] for item in body["data"]})
        path = next((link["uri"] for link in body["links"] if link["rel"] == "next"), None)
    return out


async def _status(session: aiohttp.ClientSession, sim: RunningSimulator, token: str) -> int:
    async with session.get(
        sim.base_url + "/v3.0/events?limit=1", headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        return resp.status


async def _post(session: aiohttp.ClientSession, url: str, body: object = None) -> Any:
    async with session.post(url, json=body) as resp:
        assert resp.status == 200
        return await resp.json()


class TestTokensEndpoint:
    async def test_lists_every_district_in_clevers_shape(
        self, session: aiohttp.ClientSession
    ) -> None:
        """Each authorized district has one record with owner, access token and scopes."""
        world = World.generate(1, districts=2, events_per_district=10)
        async with running_simulator(world, SimOptions()) as sim:
            status, body = await _tokens(session, sim)
        first = sorted(world.districts, key=lambda d: d.id)[0]
        item = body["data"][0]
        assert status == 200
        assert sorted(item) == ["access_token", "created", "id", "owner", "scopes"]
        assert item["owner"] == {"type": "district", "id": first.id}
        assert item["access_token"] == f"sim_{first.id}"
        assert [i["owner"]["id"] for i in body["data"]] == sorted(d.id for d in world.districts)
        assert [link["rel"] for link in body["links"]] == ["self"]

    async def test_pages_with_a_next_link(self, session: aiohttp.ClientSession) -> None:
        """Five districts with a page size of two come in three pages, each once."""
        world = World.generate(1, districts=5, events_per_district=5)
        async with running_simulator(world, SimOptions(tokens_page_size=2)) as sim:
            tokens = await _all_tokens(session, sim)
        assert tokens == {d.id: d.token for d in world.districts}

    async def test_wrong_credentials_and_one_district(self, session: aiohttp.ClientSession) -> None:
        """A wrong secret gets 401; ``district=<id>`` lists just that district."""
        world = World.generate(1, districts=3, events_per_district=5)
        wanted = world.districts[1].id
        async with running_simulator(world, SimOptions()) as sim:
            bad, _ = await _tokens(session, sim, auth=_basic("sim_client_id", "no"))
            none, _ = await _tokens(session, sim, auth=None)
            ok, body = await _tokens(session, sim, f"/oauth/tokens?district={wanted}")
        assert (bad, none, ok) == (401, 401, 200)
        assert [i["owner"]["id"] for i in body["data"]] == [wanted]


class TestFleetControl:
    async def test_add_rotate_remove_and_reconnect(self, session: aiohttp.ClientSession) -> None:
        """Add, rotate (old token 401), remove (gone, 401) and reconnect change list and auth."""
        world = World.generate(1, districts=1, events_per_district=5)
        async with running_simulator(world, SimOptions()) as sim:
            added = await _post(session, sim.base_url + "/_sim/districts", {"events": 20})
            new_id, old_token = added["id"], added["token"]
            listed = await _all_tokens(session, sim)
            rotated = await _post(session, f"{sim.base_url}/_sim/districts/{new_id}/rotate")
            after_rotate = (
                await _status(session, sim, old_token),
                await _status(session, sim, rotated["token"]),
            )
            async with session.delete(f"{sim.base_url}/_sim/districts/{new_id}") as resp:
                assert resp.status == 200
            after_remove = (
                await _all_tokens(session, sim),
                await _status(session, sim, rotated["token"]),
            )
            back = await _post(session, sim.base_url + "/_sim/districts", {"id": new_id})
            after_back = await _all_tokens(session, sim)
        assert len(world.district(new_id).feed) == 20
        assert listed == {world.districts[0].id: world.districts[0].token, new_id: old_token}
        assert after_rotate == (401, 200)
        assert after_remove == ({world.districts[0].id: world.districts[0].token}, 401)
        assert back["token"] not in (old_token, rotated["token"])
        assert after_back[new_id] == back["token"]
