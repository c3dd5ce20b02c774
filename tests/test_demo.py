"""`clever-relay demo` runs the whole pipeline and its summary agrees with Redis."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.proc_lines import LineReader
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

    def test_demo_ctrl_c_stops_cleanly_with_exit_0(self) -> None:
        """Ctrl-C (SIGINT to the process group) stops the relay, then a private Redis; exit 0."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "relay", "demo"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={k: v for k, v in os.environ.items() if k != "RELAY__REDIS__URL"},
            cwd=ROOT,
            start_new_session=True,  # its own process group, as a terminal's foreground job
        )
        reader = LineReader(proc)
        try:
            reader.wait_for(lambda seen: any(" | legacy:" in x for x in seen))
            os.killpg(proc.pid, signal.SIGINT)
            assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
            assert proc.stderr is not None
            assert proc.stderr.read() == ""
            reader.close()
            private = re.search(
                r"started a private one at redis://127.0.0.1:(\d+)/0", reader.seen[0]
            )
            port = private.group(1) if private is not None else "6379"
            assert "final summary:" in reader.seen
            assert reader.seen[-1] == (
                f"read what it wrote: redis-cli -p {port} "
                "XREAD COUNT 10 STREAMS clever-demo:legacy:teachers 0"
            )
        finally:
            proc.kill()
            proc.wait()
            reader.close()
            if proc.stderr is not None:
                proc.stderr.close()

    @pytest.mark.parametrize("how", ["env", "flag"])
    def test_demo_named_redis_unreachable_is_one_line_exit_2(self, how: str) -> None:
        """A named Redis that does not answer: exit 2, one line on stderr, no private Redis."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            url = f"redis://:hunter2@127.0.0.1:{sock.getsockname()[1]}/0"
            env = {k: v for k, v in os.environ.items() if k != "RELAY__REDIS__URL"}
            flag = []
            if how == "env":
                env["RELAY__REDIS__URL"] = url
            else:
                flag = ["--redis-url", url]
            result = subprocess.run(
                [sys.executable, "-m", "relay", "demo", "--duration", "5", *flag],
                capture_output=True,
                text=True,
                env=env,
                cwd=ROOT,
                timeout=90,
                check=False,
            )
        named = "RELAY__REDIS__URL" if how == "env" else "--redis-url"
        port = url.rsplit(":", 1)[1]
        assert (result.returncode, result.stdout, result.stderr) == (
            2,
            "",
            f"clever-relay: no Redis answers at redis://:[REDACTED]@127.0.0.1:{port} "
            f"(named by {named}); "
            "start it, or name none and the demo starts a private one\n",
        )
