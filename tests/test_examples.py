"""The examples shipped for consumers work against what the relay produces."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import redis

from relay.webhooks.signing import decode_secret, sign

ROOT = Path(__file__).resolve().parents[1]
SECRET_A = "whsec_c2VjcmV0LWtleS1vbmU="
SECRET_B = "whsec_c2VjcmV0LWtleS10d28="


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TestWebhookReceiverExample:
    def test_receiver_accepts_the_relays_signature_during_rotation(self) -> None:
        """A request the relay signs with two secrets verifies with either one alone."""
        receiver = load("webhook_receiver")
        body = b'{"id":"0000000000000000000000a1","type":"students.created"}'
        now = int(time.time())
        keys = [decode_secret(SECRET_A), decode_secret(SECRET_B)]
        headers = {
            "webhook-id": "0000000000000000000000a1",
            "webhook-timestamp": str(now),
            "webhook-signature": sign(keys, "0000000000000000000000a1", now, body),
        }
        assert receiver.is_authentic([SECRET_A], headers, body) is True
        assert receiver.is_authentic([SECRET_B], headers, body) is True
        assert receiver.is_authentic(["whsec_b3RoZXI="], headers, body) is False
        assert receiver.is_authentic([SECRET_A], headers, body + b" ") is False

    def test_receiver_rejects_stale_timestamps(self) -> None:
        """A correctly signed request older than the tolerance is refused (replay)."""
        receiver = load("webhook_receiver")
        body = b"{}"
        old = int(time.time()) - receiver.TOLERANCE_S - 5
        headers = {
            "webhook-id": "x",
            "webhook-timestamp": str(old),
            "webhook-signature": sign([decode_secret(SECRET_A)], "x", old, body),
        }
        assert receiver.is_authentic([SECRET_A], headers, body) is False


class LineReader:
    """A subprocess's stdout, read by a thread so a test can wait for a line with a deadline."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert proc.stdout is not None
        self.stdout = proc.stdout
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.stdout:
            self.lines.put(line)

    def close(self) -> None:
        """After the process ended: let the thread read to the end, then close the pipe."""
        self.thread.join(timeout=30)
        self.stdout.close()

    def wait_for(self, predicate: Callable[[list[str]], bool], timeout_s: float = 90) -> None:
        """Read lines until ``predicate(all lines so far)`` holds; fail after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not predicate(self.seen):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"timed out; output so far: {self.seen}"
            with contextlib.suppress(queue.Empty):
                self.seen.append(self.lines.get(timeout=min(remaining, 1.0)).rstrip("\n"))


def legacy_entry(event_id: str) -> dict[Any, Any]:
    """Fields of one ``<prefix>:legacy:teachers`` entry as the translator writes them."""
    data = {
        "id": event_id,
        "type": "teachers.created",
        "created": "2026-01-01T00:00:00.000Z",
        "data": {"object": {"id": "t1", "name": {"first": "Ada", "last": "L"}}},
    }
    return {
        "id": event_id,
        "type": "teachers.created",
        "district": "d1",
        "source": "s",
        "data": json.dumps(data),
    }


class TestLegacyConsumerExample:
    def test_consumer_outlives_quiet_periods_and_stops_on_ctrl_c(self, redis_url: str) -> None:
        """Past two 5 s blocks with no entries it still runs, reads a new entry, and Ctrl-C is 0."""
        client = redis.Redis.from_url(redis_url)
        client.flushall()
        client.xadd("quiet:legacy:teachers", legacy_entry("a" * 24))
        proc = subprocess.Popen(
            [
                sys.executable,
                "-u",
                str(ROOT / "examples" / "legacy_consumer.py"),
                "--redis-url",
                redis_url,
                "--prefix",
                "quiet",
                "teachers",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        reader = LineReader(proc)
        try:
            reader.wait_for(lambda seen: sum(x.startswith("idle:") for x in seen) >= 3)
            assert proc.poll() is None
            client.xadd("quiet:legacy:teachers", legacy_entry("b" * 24))
            reader.wait_for(lambda seen: any(x.startswith("b" * 24) for x in seen))
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=60) == 0, reader.seen
            handled = [x.split()[0] for x in reader.seen if not x.startswith("idle:")]
            assert handled == ["a" * 24, "b" * 24]
        finally:
            proc.kill()
            proc.wait()
            reader.close()
            client.close()
