"""The examples shipped for consumers work against what the relay produces."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import redis

from relay.webhooks.signing import decode_secret, sign
from tests.proc_lines import LineReader

ROOT = Path(__file__).resolve().parents[1]
SECRET_A = "whsec_c2VjcmV0LWtleS1vbmUtZm9yLXRoZS1leGFtcGxlcw=="
SECRET_B = "whsec_c2VjcmV0LWtleS10d28tZm9yLXRoZS1leGFtcGxlcw=="


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
        assert (
            receiver.is_authentic(
                ["whsec_YW5vdGhlci1zZWNyZXQtZm9yLXRoZS1leGFtcGxlcw=="], headers, body
            )
            is False
        )
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
