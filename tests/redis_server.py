"""Private ``redis-server`` processes for tests that must kill and restart Redis."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

FREE_PORTS = range(20000, 32000)
"""Below Linux's ephemeral range (32768-60999): a port handed out here is never taken, between
handing it out and the server binding it, by the kernel for some outgoing connection (the tests
open thousands), which made a bind fail with "address already in use" under load."""


def free_port() -> int:
    """A TCP port on loopback that is free now, picked at random outside the ephemeral range."""
    rng = random.Random()  # not cryptography: spreads concurrent test processes apart
    for _ in range(200):
        port = rng.choice(FREE_PORTS)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {FREE_PORTS}")


class RedisServer:
    """A ``redis-server`` on a free port with its own data directory.

    ``aof=True`` turns on ``appendonly`` with ``appendfsync always`` so that a SIGKILL loses
    nothing acknowledged, which is what the restart tests need to prove the relay's own
    guarantees rather than Redis's durability settings.
    """

    def __init__(self, *, aof: bool = False, extra: list[str] | None = None) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="relay-redis-"))
        self.aof = aof
        self.extra = extra or []
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The ``redis://`` URL of this server (database 0)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        args = [
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
            "yes" if self.aof else "no",
            "--protected-mode",
            "no",
        ]
        if self.aof:
            args += ["--appendfsync", "always"]
        self.proc = subprocess.Popen(
            [*args, *self.extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.wait_ready()

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Block until the server answers PING (polling, as a process has no ready signal)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def kill(self) -> None:
        """SIGKILL the server (no shutdown save)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def restart(self) -> None:
        """Kill, then start again on the same port and data directory."""
        self.kill()
        self.start()

    def stop(self) -> None:
        """Kill the server and remove its data directory."""
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
