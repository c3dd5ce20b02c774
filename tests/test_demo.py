"""`clever-relay demo` runs the whole pipeline and its summary agrees with Redis."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import redis

from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[1]


class TestDemo:
    def test_demo_duration_fills_legacy_streams_and_summary_matches(
        self, redis_server: RedisServer
    ) -> None:
        """A 10-second run translates, counts what the streams hold, and onboards a joiner."""
        env = {**os.environ, "RELAY__REDIS__URL": redis_server.url}
        result = subprocess.run(
            [sys.executable, "-m", "relay", "demo", "--duration", "10"],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=90,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        summary = result.stdout.split("final summary:\n", 1)[1]
        counts = {
            m.group(1): int(m.group(2))
            for m in re.finditer(r"^legacy:(\w+) (\d+) ", summary, flags=re.MULTILINE)
        }
        client = redis.Redis.from_url(redis_server.url)
        try:
            actual = {rt: client.xlen(f"clever-demo:legacy:{rt}") for rt in counts}
            events = client.xlen("clever-demo:events")
            entries: Any = client.xrange("clever-demo:events")
            onboarded = [
                fields[b"district"]
                for _, fields in entries
                if fields[b"type"] == b"relay.district_onboarded"
            ]
        finally:
            client.close()
        assert counts == actual
        assert len(counts) == 10
        assert sum(counts.values()) > 1000
        assert f"v3 events {events}, dead letters 0" in summary
        joined = re.search(r"^district joined: (\w+) ", result.stdout, flags=re.MULTILINE)
        assert joined is not None
        assert onboarded == [joined.group(1).encode()]
