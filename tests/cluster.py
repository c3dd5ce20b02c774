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
    """Three cluster-enabled ``redis-server`` masters joined into one cluster, each with
    ``replicas`` replicas (none by default)."""

    def __init__(self, replicas: int = 0) -> None:
        self.nodes: list[RedisServer] = []
        self.replicas = replicas

    @property
    def url(self) -> str:
        """A ``redis://`` URL of one node; the cluster client discovers the others."""
        return f"redis://127.0.0.1:{self.nodes[0].port}"

    def start(self, timeout_s: float = 20.0) -> None:
        """Start the nodes, create the cluster, wait for ``cluster_state:ok`` on every node."""
        for _ in range(MASTERS * (1 + self.replicas)):
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
                str(self.replicas),
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

    def failover(self, master_port: int, timeout_s: float = 20.0) -> int:
        """``CLUSTER FAILOVER`` on a replica of the master on ``master_port`` (the replica
        catches up first, so no acknowledged write is lost); returns the new master's port
        once every node agrees the cluster is ok again."""
        deadline = time.monotonic() + timeout_s
        replica = _replica_of(master_port)
        while replica is None or "master_link_status:up" not in _command(
            replica, "INFO replication"
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no replica in sync with the master on {master_port}")
            time.sleep(0.05)
            replica = _replica_of(master_port)
        assert "OK" in _command(replica, "CLUSTER FAILOVER")
        while "role:master" not in _command(replica, "INFO replication") or not all(
            _cluster_ok(n.port) for n in self.nodes
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster failover did not complete")
            time.sleep(0.05)
        return replica


def _replica_of(master_port: int) -> int | None:
    """The port of a replica of the master on ``master_port`` (None until one has joined)."""
    rows = [r.split() for r in _command(master_port, "CLUSTER NODES").splitlines()]
    rows = [r for r in rows if len(r) >= 8]
    me = next((r[0] for r in rows if "myself" in r[2]), None)
    ports = [int(r[1].split("@")[0].rsplit(":", 1)[1]) for r in rows if r[3] == me]
    return ports[0] if ports else None


def _command(port: int, command: str) -> str:
    """One inline command's reply on a fresh connection (enough for CLUSTER/INFO text)."""
    with socket.create_connection(("127.0.0.1", port), timeout=2.0) as sock:
        sock.sendall(command.encode() + b"\r\n")
        data = b""
        while True:
            chunk = sock.recv(65536)
            data += chunk
            if not chunk or _complete(data):
                return data.decode(errors="replace")


def _complete(data: bytes) -> bool:
    """Whether ``data`` holds one whole simple or bulk-string reply."""
    if data[:1] in (b"+", b"-") or data[:1] == b":":
        return data.endswith(b"\r\n")
    if data[:1] == b"$" and b"\r\n" in data:
        size = int(data[1 : data.index(b"\r\n")])
        return len(data) >= data.index(b"\r\n") + 2 + size + 2
    return False


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
