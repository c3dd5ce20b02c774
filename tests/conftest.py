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

# Set by .ci/run: a spec test that did not run there is a failure, so CI keeps validating against
# Clever's real specs while a plain clone without them still passes (docs/development.md).
SPECS_REQUIRED = os.environ.get("CLEVER_API_SPECS_REQUIRED", "") == "1"
_skipped_spec_tests: list[str] = []


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a ``spec`` test, saying how to get the specs, when Clever's specs are absent."""
    if item.get_closest_marker("spec") is not None and not specs_available():
        pytest.skip(SPECS_MISSING)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Remember every skipped ``spec`` test, for the CI check at the end of the session."""
    if report.skipped and "spec" in report.keywords:
        _skipped_spec_tests.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under ``CLEVER_API_SPECS_REQUIRED=1``, a skipped ``spec`` test fails the session."""
    if SPECS_REQUIRED and _skipped_spec_tests:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say why the session failed when spec tests were required but skipped."""
    if SPECS_REQUIRED and _skipped_spec_tests:
        terminalreporter.write_line(
            f"FAILED: {len(_skipped_spec_tests)} spec test(s) skipped under "
            f"CLEVER_API_SPECS_REQUIRED=1. {SPECS_MISSING}",
            red=True,
        )


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


REQUIRE_DOWNLOADS = "RELAY_TEST_REQUIRE_DOWNLOADS"
"""Set to 1 (CI does) to make a skipped ``needs_download`` test a failure."""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """In CI a test that could not download what it needs fails instead of silently skipping."""
    report = yield
    if report.skipped and item.get_closest_marker("needs_download") and _downloads_required():
        report.outcome = "failed"
        report.longrepr = f"{REQUIRE_DOWNLOADS}=1 but the test was skipped: {report.longrepr}"
    return report


def _downloads_required() -> bool:
    return os.environ.get(REQUIRE_DOWNLOADS, "") not in ("", "0")
