"""The examples shipped for consumers work against what the relay produces."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from types import ModuleType

from relay.webhooks.signing import decode_secret, sign

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
