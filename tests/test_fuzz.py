"""Property-based fuzzing of what the relay parses: v2 requests, config, Clever's events pages.

Each property is run on a modest number of generated cases (``MAX_EXAMPLES``) so the suite
stays quick on a loaded machine; the promise checked is always the same: a clear error (a 4xx
with ``{"message"}``, a ``ConfigError``, a ``CleverError``) or a dead letter, never a 500 and
never another exception.
"""

from __future__ import annotations

import asyncio
import string
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import msgspec
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.config import Config, validate
from relay.errors import CleverError, ConfigError
from relay.messages import decode_page
from relay.poller.batches import iter_batches, page_end_cursor
from relay.redis.client import create_redis
from relay.v2api.records import PATHS, RELATIONS
from tests.test_v2api_events import EVENTS, KEY
from tests.test_v2api_hostile import make_client, write

if TYPE_CHECKING:
    from collections.abc import Callable

MAX_EXAMPLES = 150
FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30)
HEX_ID = st.text("0123456789abcdef", min_size=24, max_size=24)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


def _value() -> st.SearchStrategy[str]:
    """A query value: ids that look right, numbers, words the API knows, or anything."""
    words = ["last", "students", "school_admins", "terms", "0", "-1", "10001", "1e3"]
    return HEX_ID | st.integers(-(10**20), 10**20).map(str) | st.sampled_from(words) | TEXT


QUERY = st.lists(
    st.tuples(
        st.sampled_from(
            ["limit", "starting_after", "ending_before", "record_type", "school", "x", "count"]
        ),
        _value(),
    ),
    max_size=5,
)
SEGMENT = HEX_ID | st.sampled_from(["s1", "t1", "school_a", "..", "%00"]) | TEXT
COLLECTION = st.sampled_from([*PATHS, "events", "nope"])
RELATION = st.sampled_from(sorted({r for rels in RELATIONS.values() for r in rels})) | TEXT


def _path(version: str, collection: str, parts: list[str]) -> str:
    return "/".join([f"/{version}", collection, *(quote(p, safe="") for p in parts)])


class TestV2Fuzz:
    """Random query parameters and ids against the v2 routes, with a real Redis behind."""

    def test_v2_requests_never_fail_with_500(self, redis_url: str) -> None:
        """Any path under /v2.* and any query answer 200 or a 4xx with ``{"message"}``."""
        loop = asyncio.new_event_loop()
        seen: dict[int, int] = {}

        async def setup() -> tuple[Any, TestClient[Any, Any]]:
            redis = create_redis(
                validate({"relay": {"components": ["http"]}, "redis": {"url": redis_url}}).redis
            )
            await write(redis, EVENTS)

            async def factory(app: Any) -> TestClient[Any, Any]:
                client: TestClient[Any, Any] = TestClient(TestServer(app))
                await client.start_server()
                return client

            return redis, await make_client(redis, factory)

        redis, client = loop.run_until_complete(setup())

        @FUZZ
        @given(
            version=st.sampled_from(["v2.0", "v2.1", "v2.2"]),
            collection=COLLECTION,
            parts=st.lists(SEGMENT | RELATION, max_size=2),
            query=QUERY,
        )
        def probe(version: str, collection: str, parts: list[str], query: list[Any]) -> None:
            status, body = loop.run_until_complete(
                _get(client, _path(version, collection, parts), query)
            )
            seen[status] = seen.get(status, 0) + 1
            assert status in (200, 400, 404, 413), (status, body)
            key, payload = body
            if status != 200:
                assert isinstance(payload, dict)
                assert list(payload) == [key]

        try:
            probe()
        finally:
            loop.run_until_complete(client.close())
            loop.run_until_complete(redis.aclose())
            loop.close()
        assert sum(seen.values()) >= MAX_EXAMPLES


async def _get(client: TestClient[Any, Any], path: str, query: list[Any]) -> tuple[int, Any]:
    async with client.get(path, params=query, headers={"Authorization": f"Bearer {KEY}"}) as resp:
        # The client normalizes dot segments: "/v2.1/x/../.." is asked as "/".
        key = "message" if resp.url.path.startswith("/v2.") else "error"
        return resp.status, (key, await resp.json(content_type=None))


def _field_names() -> list[str]:
    """Every key name the config knows, to reach deep into the tree."""
    names: set[str] = set()
    for cls in (Config, *(f.type for f in msgspec.structs.fields(Config))):
        names |= {f.encode_name for f in msgspec.structs.fields(cls)}
    return sorted(names)


def _config_problems(load: Callable[[], object]) -> list[str] | None:
    """The problems a load reports, or None when it succeeds (any other error propagates)."""
    try:
        load()
    except ConfigError as exc:
        return exc.problems
    return None


KEYS = st.sampled_from([*_field_names(), "districts", "clients", "endpoints", "junk"])
CONFIG_TREE = st.recursive(
    JSON,
    lambda inner: st.dictionaries(KEYS, inner, max_size=5) | st.lists(inner, max_size=3),
    max_leaves=20,
)


class TestConfigFuzz:
    """The config loader on random trees and random TOML text."""

    @FUZZ
    @given(
        tree=st.dictionaries(
            st.sampled_from([f.encode_name for f in msgspec.structs.fields(Config)]),
            CONFIG_TREE,
            max_size=5,
        )
    )
    def test_random_trees_load_or_raise_config_error(self, tree: dict[str, Any]) -> None:
        """Whatever the tree, ``validate`` returns a Config or raises ConfigError with lines."""
        problems = _config_problems(lambda: validate(tree))
        assert problems is None or (problems and all(problems))

    @FUZZ
    @given(text=st.text(string.printable, max_size=200))
    def test_random_toml_text_loads_or_raises_config_error(
        self, text: str, tmp_path_factory: Any
    ) -> None:
        """Random text as the config file: a Config or a ConfigError, never another error."""
        from relay.config import load_config

        path: Path = tmp_path_factory.mktemp("cfg") / "relay.toml"
        path.write_text(text)
        problems = _config_problems(lambda: load_config(path, environ={}))
        assert problems is None or (problems and all(problems))


EVENT = st.fixed_dictionaries(
    {},
    optional={
        "id": HEX_ID | TEXT,
        "type": st.sampled_from(["users.created", "sections.updated", "courses.deleted"]) | TEXT,
        "created": st.sampled_from(["2026-01-01T00:00:00.000Z"]) | TEXT,
        "data": st.fixed_dictionaries(
            {}, optional={"object": JSON | st.fixed_dictionaries({"id": HEX_ID})}
        )
        | JSON,
    },
)
PAGE = (
    st.fixed_dictionaries(
        {"data": st.lists(st.fixed_dictionaries({"data": EVENT | JSON}) | JSON, max_size=6)},
        optional={
            "links": st.lists(st.fixed_dictionaries({"rel": TEXT, "uri": TEXT}) | JSON, max_size=2)
        },
    )
    | JSON
)


class TestEventsPageFuzz:
    """Clever's events pages with random JSON shapes."""

    @FUZZ
    @given(page=PAGE)
    def test_random_pages_decode_to_entries_and_dead_letters_or_fail_clearly(
        self, page: Any
    ) -> None:
        """A page either fails as a whole with a clear error, or each of its items becomes
        exactly one stream entry or one dead letter."""
        try:
            decoded = decode_page(msgspec.json.encode(page))
        except msgspec.DecodeError:
            return  # the client turns this into CleverError("malformed") and retries
        failure: str | None
        try:
            page_end_cursor(decoded)
        except CleverError as exc:
            failure = exc.kind
        else:
            failure = None
        if failure is not None:
            assert failure == "malformed"
            return
        entries = dead = 0
        for batch in iter_batches(decoded, district="d1", expected=None):
            entries += len(batch.entries) // 3
            dead += len(batch.dead) // 3
        assert entries + dead == len(decoded.data)
