"""HTTP tests of the simulator: paging, auth, limits, rate limiting, retention and Data API."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from relay.simulator import SimOptions, World, running_simulator
from tests.sim import DISTRICT, event, object_id, scenario, user, user_created

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from relay.simulator import RunningSimulator

END_TIME = 1_795_000_000.0


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session closed after the test."""
    async with aiohttp.ClientSession() as client:
        yield client


async def _get(
    session: aiohttp.ClientSession, sim: RunningSimulator, path: str, token: str | None = None
) -> tuple[int, Any, Any]:
    token = token if token is not None else sim.world.districts[0].token
    async with session.get(
        sim.base_url + path, headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        body = await resp.read()
        return resp.status, resp.headers, (await resp.json() if body else body)


def _next(body: dict[str, Any]) -> str:
    uri: str = next(link["uri"] for link in body["links"] if link["rel"] == "next")
    return uri


class TestEventsPaging:
    async def test_events_walk_5000_events_once_in_order(
        self, session: aiohttp.ClientSession
    ) -> None:
        """Following next links (limit=1000) yields every event once, in order, then empty data."""
        world = World.generate(1, districts=1, events_per_district=5000)
        async with running_simulator(world, SimOptions()) as sim:
            seen: list[str] = []
            path = "/v3.0/events?limit=1000"
            while True:
                status, _, body = await _get(session, sim, path)
                assert status == 200
                if not body["data"]:
                    break
                seen.extend(item["data"]["id"] for item in body["data"])
                path = _next(body)
        assert seen == world.districts[0].feed.ids
        assert len(seen) == 5000

    async def test_events_page_envelope_and_links(self, session: aiohttp.ClientSession) -> None:
        """A page is Clever's envelope: items with data and uri, relative self/next/prev links."""
        world = World.generate(2, districts=1, events_per_district=50, end_time=END_TIME)
        ids = world.districts[0].feed.ids
        async with running_simulator(world, SimOptions()) as sim:
            _, _, body = await _get(session, sim, f"/v3.0/events?limit=2&starting_after={ids[0]}")
        assert [item["uri"] for item in body["data"]] == [
            f"/v3.0/events/{ids[1]}",
            f"/v3.0/events/{ids[2]}",
        ]
        assert body["links"] == [
            {"rel": "self", "uri": f"/v3.0/events?limit=2&starting_after={ids[0]}"},
            {"rel": "next", "uri": f"/v3.0/events?limit=2&starting_after={ids[2]}"},
            {"rel": "prev", "uri": f"/v3.0/events?limit=2&ending_before={ids[1]}"},
        ]

    async def test_events_default_limit_is_100_and_ending_before_last(
        self, session: aiohttp.ClientSession
    ) -> None:
        """No limit gives 100 events; ending_before=last&limit=1 gives the newest event."""
        world = World.generate(3, districts=1, events_per_district=300, end_time=END_TIME)
        ids = world.districts[0].feed.ids
        async with running_simulator(world, SimOptions()) as sim:
            _, _, first = await _get(session, sim, "/v3.0/events")
            _, _, newest = await _get(session, sim, "/v3.0/events?ending_before=last&limit=1")
        assert [i["data"]["id"] for i in first["data"]] == ids[:100]
        assert [i["data"]["id"] for i in newest["data"]] == [ids[-1]]

    async def test_events_record_type_filter_repeats(self, session: aiohttp.ClientSession) -> None:
        """Repeated record_type parameters select the union of those types."""
        world = World.generate(4, districts=1, events_per_district=400, end_time=END_TIME)
        district = world.districts[0]
        expected = [
            e["id"] for e in district.events() if e["type"].split(".")[0] in ("sections", "schools")
        ]
        async with running_simulator(world, SimOptions()) as sim:
            _, _, body = await _get(
                session, sim, "/v3.0/events?limit=10000&record_type=sections&record_type=schools"
            )
        assert [i["data"]["id"] for i in body["data"]] == expected

    async def test_events_get_one_by_id(self, session: aiohttp.ClientSession) -> None:
        """GET /v3.0/events/{id} returns the event with a self link; unknown ids are 404."""
        world = scenario([user_created(event_id=object_id(1))])
        async with running_simulator(world, SimOptions()) as sim:
            status, _, body = await _get(session, sim, f"/v3.0/events/{object_id(1)}")
            missing = await _get(session, sim, f"/v3.0/events/{object_id(2)}")
        assert (status, body["data"]["id"], body["links"]) == (
            200,
            object_id(1),
            [{"rel": "self", "uri": f"/v3.0/events/{object_id(1)}"}],
        )
        assert (missing[0], missing[2]) == (404, {"message": f"event {object_id(2)} not found"})


class TestAuthAndLimits:
    async def test_auth_rejects_missing_and_wrong_tokens(
        self, session: aiohttp.ClientSession
    ) -> None:
        """A missing or unknown bearer token gets 401 with a message body."""
        async with running_simulator(scenario([user_created()]), SimOptions()) as sim:
            async with session.get(sim.base_url + "/v3.0/events") as resp:
                missing = (resp.status, await resp.json())
            wrong = await _get(session, sim, "/v3.0/events", token="nope")
        assert missing == (401, {"message": "invalid or missing bearer token"})
        assert (wrong[0], wrong[2]) == missing

    async def test_limit_over_10000_is_413(self, session: aiohttp.ClientSession) -> None:
        """limit above 10000 answers 413; 10000 itself is fine."""
        async with running_simulator(scenario([user_created()]), SimOptions()) as sim:
            over = await _get(session, sim, "/v3.0/events?limit=10001")
            ok = await _get(session, sim, "/v3.0/events?limit=10000")
        assert (over[0], over[2], ok[0]) == (413, {"message": "limit may not exceed 10000"}, 200)

    async def test_rate_limit_429_empty_body_and_headers(
        self, session: aiohttp.ClientSession
    ) -> None:
        """After the window's budget a 429 with an empty body comes back, counted as unforced."""
        options = SimOptions(rate_limit=3, rate_window_s=60)
        async with running_simulator(scenario([user_created()]), options) as sim:
            results = [await _get(session, sim, "/v3.0/events") for _ in range(4)]
            stats = sim.stats
        assert [r[0] for r in results] == [200, 200, 200, 429]
        assert [r[1]["X-RateLimit-Remaining"] for r in results] == ["2", "1", "0", "0"]
        reset = int(results[3][1]["X-RateLimit-Reset"])
        assert results[3][2] == b""
        assert (results[3][1]["X-RateLimit-Limit"], results[3][1]["X-RateLimit-Bucket"]) == (
            "3",
            DISTRICT,
        )
        assert 0 < reset - time.time() <= 60
        assert (stats.responses_429_unforced, stats.responses_429_forced) == (1, 0)

    async def test_forced_429_counted_separately(self, session: aiohttp.ClientSession) -> None:
        """A scripted 429 is counted as forced, not as a client mistake."""
        options = SimOptions()
        async with running_simulator(scenario([user_created()]), options) as sim:
            async with session.post(
                sim.base_url + "/_sim/faults", json={"script": ["429"]}
            ) as resp:
                assert (await resp.json())["script"] == ["429"]
            first = await _get(session, sim, "/v3.0/events")
            second = await _get(session, sim, "/v3.0/events")
            async with session.get(sim.base_url + "/_sim/stats") as resp:
                stats = await resp.json()
        assert (first[0], first[2], first[1]["X-RateLimit-Remaining"], second[0]) == (
            429,
            b"",
            "0",
            200,
        )
        assert (
            stats["responses_429_forced"],
            stats["responses_429_unforced"],
            stats["requests"],
        ) == (1, 0, 2)
        assert stats["per_token"][DISTRICT]["responses_429_forced"] == 1


class TestRetention:
    def _world(self) -> World:
        # 20 days of history: with 10-day retention about half of it has expired.
        return World.generate(
            5, districts=1, events_per_district=200, history_days=20, end_time=time.time()
        )

    async def test_retention_hides_old_events_from_the_top(
        self, session: aiohttp.ClientSession
    ) -> None:
        """The feed starts at the first event younger than the retention window."""
        world = self._world()
        feed = world.districts[0].feed
        lo = feed.first_visible(time.time() - 10 * 86400)
        async with running_simulator(world, SimOptions(retention_days=10)) as sim:
            _, _, body = await _get(session, sim, "/v3.0/events?limit=10000")
        assert [i["data"]["id"] for i in body["data"]] == feed.ids[lo:]
        assert 80 < lo < 120

    @pytest.mark.parametrize(
        ("mode", "expected_status", "expected_count"), [("404", 404, None), ("empty", 200, 0)]
    )
    async def test_retention_expired_cursor_answers_per_mode(
        self,
        session: aiohttp.ClientSession,
        mode: str,
        expected_status: int,
        expected_count: int | None,
    ) -> None:
        """starting_after an expired event answers 404 or an empty page, as configured."""
        world = self._world()
        expired = world.districts[0].feed.ids[0]
        options = SimOptions(retention_days=10, cursor_lost=mode)  # type: ignore[arg-type]  # parametrized literal
        async with running_simulator(world, options) as sim:
            status, _, body = await _get(session, sim, f"/v3.0/events?starting_after={expired}")
        assert status == expected_status
        if expected_count is None:
            assert body == {"message": f"event {expired} expired"}
        else:
            assert body["data"] == []

    async def test_retention_resume_mode_continues_at_the_top(
        self, session: aiohttp.ClientSession
    ) -> None:
        """In resume mode an expired cursor silently continues at the oldest retained event."""
        world = self._world()
        feed = world.districts[0].feed
        lo = feed.first_visible(time.time() - 10 * 86400)
        async with running_simulator(
            world, SimOptions(retention_days=10, cursor_lost="resume")
        ) as sim:
            _, _, body = await _get(
                session, sim, f"/v3.0/events?limit=1&starting_after={feed.ids[0]}"
            )
        assert [i["data"]["id"] for i in body["data"]] == [feed.ids[lo]]


class TestDataApi:
    async def test_data_api_users_by_role_and_by_id(self, session: aiohttp.ClientSession) -> None:
        """/v3.0/users?role= lists current users with that role; deleted users are 404."""
        teacher = user(
            object_id(10, 0x60000000), roles={"teacher": {"legacy_id": object_id(1, 0x5A000000)}}
        )
        student = user(object_id(11, 0x60000000))
        gone = user(object_id(12, 0x60000000))
        events = [
            user_created(teacher),
            user_created(student),
            user_created(gone),
            event("users.deleted", gone),
        ]
        async with running_simulator(scenario(events), SimOptions()) as sim:
            _, _, teachers = await _get(session, sim, "/v3.0/users?role=teacher")
            _, _, everyone = await _get(session, sim, "/v3.0/users?limit=1")
            _, _, one = await _get(session, sim, f"/v3.0/users/{student['id']}")
            missing = await _get(session, sim, f"/v3.0/users/{gone['id']}")
        assert teachers["data"] == [{"data": teacher, "uri": f"/v3.0/users/{teacher['id']}"}]
        assert [i["data"]["id"] for i in everyone["data"]] == [teacher["id"]]
        assert _next(everyone) == f"/v3.0/users?limit=1&starting_after={teacher['id']}"
        assert one["data"] == student
        assert missing[0] == 404

    async def test_data_api_reflects_updates(self, session: aiohttp.ClientSession) -> None:
        """After a users.updated event the Data API serves the updated record."""
        before = user(object_id(20, 0x60000000))
        after = {**before, "email": "new@example.net"}
        events = [
            user_created(before),
            event("users.updated", after, previous_attributes={"email": before["email"]}),
        ]
        async with running_simulator(scenario(events), SimOptions()) as sim:
            _, _, body = await _get(session, sim, f"/v3.0/users/{before['id']}")
        assert body["data"] == after

    async def test_data_api_lists_generated_world_state(
        self, session: aiohttp.ClientSession
    ) -> None:
        """Every list endpoint serves the district's current records, sorted by id."""
        world = World.generate(6, districts=1, events_per_district=400, end_time=END_TIME)
        state = world.districts[0].state
        async with running_simulator(world, SimOptions()) as sim:
            got = {}
            for name in ("users", "schools", "sections", "courses", "terms", "districts"):
                _, _, body = await _get(session, sim, f"/v3.0/{name}?limit=10000")
                got[name] = [i["data"]["id"] for i in body["data"]]
        assert got == {name: state[name].ids for name in got}
        assert got["districts"] == [world.districts[0].id]
