"""Tests of the Clever client and its retry helper against the simulator."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import aiohttp
import msgspec
import pytest

from relay.clever import CleverClient, CleverNotFound, PageTooLarge, Stopped, call_with_retries
from relay.errors import CleverAuthError, CleverError, CursorLostError
from relay.metrics import POLL_ERRORS
from relay.simulator import FaultsPatch, SimOptions, World, running_simulator

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from relay.simulator import RunningSimulator
    from relay.simulator.faults import FaultName

UNKNOWN_ID = "5f0000000000000000000000"


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    """A simulator with one 30-event district."""
    async with running_simulator(
        World.generate(41, districts=1, events_per_district=30), SimOptions()
    ) as s:
        yield s


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """One aiohttp session, closed after the test."""
    async with aiohttp.ClientSession() as s:
        yield s


def _client(
    sim: RunningSimulator, session: aiohttp.ClientSession, token: str | None = None
) -> CleverClient:
    district = sim.world.districts[0]
    return CleverClient(
        session=session,
        base_url=sim.base_url,
        district=district.id,
        token=token or district.token,
        timeout_s=5.0,
    )


def _script(sim: RunningSimulator, *faults: FaultName) -> None:
    sim.set_faults(FaultsPatch(script=list(faults)))


class TestCleverClient:
    """Each HTTP outcome becomes a result or the matching relay error."""

    async def test_client_events_page(
        self, sim: RunningSimulator, session: aiohttp.ClientSession
    ) -> None:
        """A page holds the events after the cursor, raw, in order."""
        ids = sim.world.districts[0].feed.ids
        page = await _client(sim, session).events_page(starting_after=ids[4], limit=3)
        assert [msgspec.json.decode(item.data)["id"] for item in page.data] == list(ids[5:8])

    async def test_client_latest_event_id(
        self, sim: RunningSimulator, session: aiohttp.ClientSession
    ) -> None:
        """The newest event id comes from ``ending_before=last&limit=1``."""
        assert await _client(sim, session).latest_event_id() == sim.world.districts[0].feed.ids[-1]

    async def test_client_get_user(
        self, sim: RunningSimulator, session: aiohttp.ClientSession
    ) -> None:
        """A user is returned as the raw JSON of the response's ``data``."""
        user = next(
            e["data"]["object"]
            for e in sim.world.districts[0].events()
            if e["type"] == "users.created"
        )
        raw = await _client(sim, session).get_user(user["id"])
        assert msgspec.json.decode(raw)["id"] == user["id"]

    async def test_client_get_user_not_found(
        self, sim: RunningSimulator, session: aiohttp.ClientSession
    ) -> None:
        """An unknown user is CleverNotFound."""
        with pytest.raises(CleverNotFound):
            await _client(sim, session).get_user(UNKNOWN_ID)

    async def test_client_unknown_cursor(
        self, sim: RunningSimulator, session: aiohttp.ClientSession
    ) -> None:
        """A 404 on ``starting_after`` is a lost cursor naming it."""
        with pytest.raises(CursorLostError) as info:
            await _client(sim, session).events_page(starting_after=UNKNOWN_ID, limit=10)
        assert (info.value.cursor, info.value.status) == (UNKNOWN_ID, 404)

    async def test_client_bad_token(
        self, sim: RunningSimulator, session: aiohttp.ClientSession
    ) -> None:
        """A refused token is CleverAuthError with the status."""
        with pytest.raises(CleverAuthError) as info:
            await _client(sim, session, token="nope").events_page(limit=10)
        assert info.value.status == 401

    async def test_client_page_too_large(
        self, sim: RunningSimulator, session: aiohttp.ClientSession
    ) -> None:
        """A limit above 10000 is PageTooLarge carrying the limit."""
        with pytest.raises(PageTooLarge) as info:
            await _client(sim, session).events_page(limit=10_001)
        assert info.value.limit == 10_001

    @pytest.mark.parametrize(
        ("fault", "kind"),
        [
            ("500", "5xx"),
            ("503", "5xx"),
            ("malformed", "malformed"),
            ("truncate", "truncated"),
            ("drop", "connect"),
        ],
    )
    async def test_client_transient_failures(
        self, sim: RunningSimulator, session: aiohttp.ClientSession, fault: FaultName, kind: str
    ) -> None:
        """Server errors, bad bodies and dropped connections are CleverError of the right kind."""
        # Twice: aiohttp itself retries a GET once when the connection is dropped unanswered.
        _script(sim, fault, fault)
        with pytest.raises(CleverError) as info:
            await _client(sim, session).events_page(limit=10)
        assert info.value.kind == kind

    async def test_client_429_blocks_until_reset(
        self, sim: RunningSimulator, session: aiohttp.ClientSession
    ) -> None:
        """A 429 is rate_limited and makes the limiter wait for the window's reset."""
        _script(sim, "429")
        client = _client(sim, session)
        with pytest.raises(CleverError) as info:
            await client.events_page(limit=10)
        assert info.value.kind == "rate_limited"
        assert client.limiter.blocked_until > time.time()

    async def test_client_timeout(self, session: aiohttp.ClientSession) -> None:
        """No answer within the timeout is a timeout error."""
        options = SimOptions(
            faults=msgspec.convert({"latency_ms": 500}, type=type(SimOptions().faults))
        )
        async with running_simulator(
            World.generate(42, districts=1, events_per_district=1), options
        ) as slow:
            district = slow.world.districts[0]
            client = CleverClient(
                session=session,
                base_url=slow.base_url,
                district=district.id,
                token=district.token,
                timeout_s=0.05,
            )
            with pytest.raises(CleverError) as info:
                await client.events_page(limit=1)
        assert info.value.kind == "timeout"

    def test_client_repr_hides_token(
        self, sim: RunningSimulator, session: aiohttp.ClientSession
    ) -> None:
        """The client's repr never shows the token."""
        client = _client(sim, session, token="secret-token-123")
        assert "secret-token-123" not in repr(client)


class TestCallWithRetries:
    """The retry loop for transient errors."""

    async def test_retries_until_success(
        self, sim: RunningSimulator, session: aiohttp.ClientSession
    ) -> None:
        """Transient failures are retried, counted by kind, and the result returned."""
        _script(sim, "500", "malformed", "ok")
        client = _client(sim, session)
        district = client.district
        before = POLL_ERRORS.labels(district, "5xx")._value.get()
        seen: list[str] = []
        page = await call_with_retries(
            lambda: client.events_page(limit=5),
            district=district,
            max_backoff_s=0.01,
            on_error=lambda exc: seen.append(exc.kind),
        )
        assert len(page.data) == 5
        assert seen == ["5xx", "malformed"]
        assert POLL_ERRORS.labels(district, "5xx")._value.get() == before + 1

    async def test_retries_do_not_swallow_permanent(
        self, sim: RunningSimulator, session: aiohttp.ClientSession
    ) -> None:
        """Permanent errors propagate at once."""
        client = _client(sim, session, token="nope")
        with pytest.raises(CleverAuthError):
            await call_with_retries(
                lambda: client.events_page(limit=5), district="d", max_backoff_s=0.01
            )

    async def test_retries_abort_on_stop(
        self, sim: RunningSimulator, session: aiohttp.ClientSession
    ) -> None:
        """Setting stop while waiting to retry raises Stopped promptly."""
        sim.set_faults(FaultsPatch(fail_rate=1.0))
        client = _client(sim, session)
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.05, stop.set)
        started = time.monotonic()
        with pytest.raises(Stopped):
            await call_with_retries(
                lambda: client.events_page(limit=5), district="d", max_backoff_s=30.0, stop=stop
            )
        assert time.monotonic() - started < 2.0
