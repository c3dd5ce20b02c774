"""``clever-relay check-config --connect`` against a real Redis and the simulator as Clever."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.proc_lines import LineReader
from tests.redis_server import RedisServer, free_port
from tests.sim import start_simulator_process

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def simulator() -> Iterator[tuple[str, list[str]]]:
    """A ``clever-relay simulate`` process: (base URL, its district ids)."""
    proc, base_url = start_simulator_process(["--districts", "2"])
    try:
        with urllib.request.urlopen(f"{base_url}/_sim/districts", timeout=10) as resp:
            body = json.loads(resp.read())
        yield base_url, [d["id"] for d in body]
    finally:
        proc.kill()
        proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def readyz(port: int) -> int:
    """Status of ``GET /readyz`` once the ops server answers (waits for it to start)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            assert time.monotonic() < deadline, "the ops server never answered"
            time.sleep(0.2)


def check(
    tmp_path: Path, redis_url: str, base_url: str, tokens: dict[str, str], extra: str = ""
) -> tuple[int, str, str]:
    """Run ``check-config --connect`` on a config naming ``redis_url``, ``base_url`` and tokens
    (``extra``: more TOML at the end)."""
    districts = "".join(
        f'[[clever.districts]]\nid = "{d}"\ntoken = "{t}"\n' for d, t in tokens.items()
    )
    path = tmp_path / "relay.toml"
    path.write_text(
        f'[relay]\ncomponents = ["poller"]\n[redis]\nurl = "{redis_url}"\n'
        f'[clever]\nbase_url = "{base_url}"\n{districts}{extra}'
    )
    result = subprocess.run(
        [sys.executable, "-m", "relay", "check-config", "--connect", "--config", str(path)],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    return result.returncode, result.stdout, result.stderr


class TestCheckConfigConnect:
    def test_connect_all_good_exits_0_and_reports_redis(
        self, tmp_path: Path, redis_server: RedisServer, simulator: tuple[str, list[str]]
    ) -> None:
        """Redis answers and both tokens are accepted: exit 0, policy and persistence shown."""
        base_url, districts = simulator
        tokens = {d: f"sim_{d}" for d in districts}
        assert check(tmp_path, redis_server.url, base_url, tokens) == (
            0,
            "config ok: 2 district(s), components poller\n"
            f"redis ok: {redis_server.url}, maxmemory-policy noeviction, persistence off\n"
            "clever ok: 2 of 2 district token(s) accepted\n",
            "",
        )

    def test_connect_rejected_token_is_one_line_exit_2(
        self, tmp_path: Path, redis_server: RedisServer, simulator: tuple[str, list[str]]
    ) -> None:
        """A token Clever refuses is one line naming the district; exit 2."""
        base_url, districts = simulator
        tokens = {districts[0]: f"sim_{districts[0]}", districts[1]: "not-a-token"}
        code, out, err = check(tmp_path, redis_server.url, base_url, tokens)
        assert (code, out.splitlines()[-1], err) == (
            2,
            "clever ok: 1 of 2 district token(s) accepted",
            f"clever.districts[1] ({districts[1]}): token rejected by Clever (HTTP 401)\n",
        )

    def test_connect_refused_discovery_credentials_is_one_line_exit_2(
        self, tmp_path: Path, redis_server: RedisServer, simulator: tuple[str, list[str]]
    ) -> None:
        """A discovery client secret Clever refuses is one ``clever.discovery`` line; exit 2."""
        base_url, districts = simulator
        discovery = (
            f'[clever.discovery]\nclient_id = "sim_client_id"\nclient_secret = "wrong"\n'
            f'oauth_base_url = "{base_url}"\n'
        )
        tokens = {d: f"sim_{d}" for d in districts}
        code, _, err = check(tmp_path, redis_server.url, base_url, tokens, discovery)
        assert (code, err) == (2, "clever.discovery: client id/secret refused (HTTP 401)\n")

    def test_connect_redis_unreachable_is_one_line_exit_2(
        self, tmp_path: Path, simulator: tuple[str, list[str]]
    ) -> None:
        """No Redis at the URL: one ``redis.url`` line with the password redacted; exit 2."""
        base_url, districts = simulator
        url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
        code, out, err = check(tmp_path, url, base_url, {d: f"sim_{d}" for d in districts})
        prefix = f"redis.url: no Redis answers at {url.replace('hunter2', '[REDACTED]')} ("
        assert (code, len(err.splitlines()), err.startswith(prefix), "hunter2" in out + err) == (
            2,
            1,
            True,
            False,
        )


class TestRunWithoutRedis:
    def test_run_names_the_unreachable_redis_once_and_is_not_ready(
        self, tmp_path: Path, simulator: tuple[str, list[str]]
    ) -> None:
        """Redis down at start: one line with the URL (redacted), /readyz 503, no log flood."""
        base_url, districts = simulator
        port, url = free_port(), f"redis://:hunter2@127.0.0.1:{free_port()}/0"
        path = tmp_path / "relay.toml"
        path.write_text(
            f'[relay]\ncomponents = ["poller", "translator", "http"]\n[redis]\nurl = "{url}"\n'
            f'[http]\nport = {port}\n[clever]\nbase_url = "{base_url}"\n'
            f'[[clever.districts]]\nid = "{districts[0]}"\ntoken = "sim_{districts[0]}"\n'
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "relay", "run", "--config", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
        )
        reader = LineReader(proc)
        try:
            reader.wait_for(lambda seen: any('"redis_unreachable"' in x for x in seen))
            # Watch a window of readiness probes: every one 503 while Redis stays away.
            statuses = [readyz(port) for _ in range(20)]
            proc.terminate()
            assert proc.wait(timeout=60) in (0, 1)
        finally:
            proc.kill()
            proc.wait()
            reader.close()
        events = [json.loads(x)["event"] for x in reader.seen if x.startswith("{")]
        first = next(json.loads(x) for x in reader.seen if '"redis_unreachable"' in x)
        assert (set(statuses), first["url"], "hunter2" in "\n".join(reader.seen)) == (
            {503},
            url.replace("hunter2", "[REDACTED]"),
            False,
        )
        floods = {e: events.count(e) for e in set(events) if events.count(e) > 2}
        assert floods == {}
