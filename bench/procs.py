"""Processes a benchmark run starts: a private redis-server, the simulator, relay components.

Every figure comes from real processes so that CPU and memory are those of one process each
(peak RSS is ``VmHWM`` from ``/proc/<pid>/status``, read just before the process is stopped).
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

READY_TIMEOUT_S = 120.0


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size (``VmHWM``) of a live process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def stop_process(proc: subprocess.Popen[bytes], *, timeout_s: float = 30.0) -> int:
    """SIGTERM, wait, SIGKILL if it will not go; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class RedisProc:
    """A private ``redis-server`` without persistence (the figures are about the relay)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="bench-redis-"))
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"redis://127.0.0.1:{self.port}/0"
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.client().ping():
                    break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def client(self) -> redis.Redis:
        """A new synchronous client (bytes replies)."""
        return redis.Redis.from_url(self.url)

    def version(self) -> str:
        """The server's version string."""
        info: dict[str, Any] = self.client().info("server")
        return str(info["redis_version"])

    def close(self) -> None:
        """Stop the server and remove its directory."""
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class SimDistrict:
    """One served district: id, token and the id of its last event."""

    id: str
    token: str
    last_event: str
    events: int


class SimProc:
    """The simulator in its own process (``python -m bench.simserver``, uvloop)."""

    def __init__(
        self,
        *,
        seed: int,
        districts: int,
        events_per_district: int,
        live_rate: float = 0.0,
        rate_limit: int = 1_000_000_000,
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        args = [
            sys.executable,
            "-m",
            "bench.simserver",
            "--port",
            str(self.port),
            "--seed",
            str(seed),
            "--districts",
            str(districts),
            "--events",
            str(events_per_district),
            "--live-rate",
            str(live_rate),
            "--rate-limit",
            str(rate_limit),
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                self.districts()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("simulator did not start") from None
                time.sleep(0.1)

    def districts(self) -> list[SimDistrict]:
        """Every district with its token and last event id (``GET /_sim/districts``)."""
        with urllib.request.urlopen(f"{self.base_url}/_sim/districts", timeout=10) as resp:
            items = json.loads(resp.read())
        return [SimDistrict(d["id"], d["token"], d["last_event"], d["events"]) for d in items]

    def close(self) -> None:
        """Stop the simulator."""
        stop_process(self.proc)


class RelayProc:
    """One ``python -m relay run --config FILE`` process."""

    def __init__(self, config_path: Path) -> None:
        self.started = time.time()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "relay", "run", "--config", str(config_path)],
            stdout=subprocess.DEVNULL,
        )

    def check_alive(self) -> None:
        """Raise if the process died (a benchmark must not wait forever on a dead relay)."""
        if self.proc.poll() is not None:
            raise RuntimeError(f"relay process exited with {self.proc.returncode}")

    def peak_rss_mb(self) -> float:
        """Peak RSS so far, MiB."""
        return peak_rss_mb(self.proc.pid)

    def stop(self) -> int:
        """Graceful stop; returns the exit code."""
        return stop_process(self.proc)
