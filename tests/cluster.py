"""A private 3-master Redis Cluster for tests: real ``redis-server --cluster-enabled yes`` nodes.

The nodes run on free ports with their own data directories and are joined with
``redis-cli --cluster create ... --cluster-yes``, exactly as an operator would build one, so the
relay's Cluster support is tested against slot routing and MOVED replies, not a stand-in.
"""

from __future__ import annotations

import random
import socket
import subprocess
import time

from tests.redis_server import RedisServer

MASTERS = 3
BUS_OFFSET = 10000
"""Redis listens for cluster-bus traffic on the client port plus this."""


class RedisClusterServers:
    """Three cluster-enabled ``redis-server`` processes joined into one cluster (no replicas)."""

    def __init__(self) -> None:
        self.nodes: list[RedisServer] = []

    @property
    def url(self) -> str:
        """A ``redis://`` URL of one node; the cluster client discovers the others."""
        return f"redis://127.0.0.1:{self.nodes[0].port}"

    def start(self, timeout_s: float = 20.0) -> None:
        """Start the nodes, create the cluster, wait for ``cluster_state:ok`` on every node."""
        for _ in range(MASTERS):
            node = RedisServer(extra=["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
            node.port = cluster_port()
            node.extra += ["--cluster-config-file", str(node.dir / "nodes.conf")]
            self.nodes.append(node)
            node.start()
        addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *addresses,
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout_s,
        )
        deadline = time.monotonic() + timeout_s
        while not all(_cluster_ok(n.port) for n in self.nodes):
            if time.monotonic() > deadline:
                raise RuntimeError("redis cluster did not reach cluster_state:ok")
            time.sleep(0.05)

    def stop(self) -> None:
        """Kill every node and remove its data directory."""
        for node in self.nodes:
            node.stop()
        self.nodes.clear()


def cluster_port() -> int:
    """A free port whose cluster-bus port (port + 10000) is valid and free too."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port + BUS_OFFSET < 65536 and _free(port) and _free(port + BUS_OFFSET):
            return port
        port = random.randrange(20000, 30000)
        if _free(port) and _free(port + BUS_OFFSET):
            return port


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cluster_ok(port: int) -> bool:
    """Whether the node on ``port`` answers CLUSTER INFO with ``cluster_state:ok``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"CLUSTER INFO\r\n")
            return b"cluster_state:ok" in sock.recv(4096)
    except OSError:
        return False
