"""Shared fixtures: a private Redis per test session, clients that flush, structlog reset."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest
import redis.asyncio as aioredis
import structlog

from tests.redis_server import RedisServer
from tests.swagger import SPECS_MISSING, specs_available

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Generator, Iterator


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a ``spec`` test, saying how to get the specs, when Clever's specs are absent."""
    if item.get_closest_marker("spec") is not None and not specs_available():
        pytest.skip(SPECS_MISSING)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server for the whole session, so tests never touch the machine's Redis."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of the session's private Redis."""
    return redis_server.url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A client on a freshly flushed database, closed after the test."""
    client = aioredis.Redis.from_url(redis_url)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture
def redis_factory() -> Iterator[Callable[..., RedisServer]]:
    """Start extra private redis-servers (e.g. with AOF, to kill and restart); stopped after."""
    servers: list[RedisServer] = []

    def make(*, aof: bool = False, extra: list[str] | None = None) -> RedisServer:
        server = RedisServer(aof=aof, extra=extra)
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """Every test starts from structlog's defaults."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


REQUIRE = "RELAY_TEST_REQUIRE"
"""Comma-separated markers (``.ci/run`` sets ``spec,needs_download,browser,promtool``) whose tests
must run: one of them skipped (no specs, no package index, no Chromium, no promtool) fails instead.
A plain clone leaves it unset, so those tests skip there with their reason (docs/development.md)."""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Where a marker is required (CI), a test of that marker that skipped fails instead."""
    report = yield
    required = {m.strip() for m in os.environ.get(REQUIRE, "").split(",") if m.strip()}
    if report.skipped and (missing := sorted(m for m in required if item.get_closest_marker(m))):
        report.outcome = "failed"
        report.longrepr = f"{REQUIRE} names {missing} but the test was skipped: {report.longrepr}"
    return report
