"""A relay SIGKILLed during a retry backlog resumes it after restart, losing nothing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from pathlib import Path

import redis.asyncio as aioredis

from tests.webhook_support import Feed, Receiver, eventually, groups_ready

CONFIG = """
[relay]
components = ["webhooks"]
lease_ttl_s = 1.0
[redis]
url = "{url}"
prefix = "t"
[legacy]
block_ms = 50
[[webhooks.endpoints]]
name = "crash"
url = "{hook}"
topics = ["students.*"]
secret = "whsec_c2VjcmV0LWtleS1mb3ItdGhlLXJlc3RhcnQtdGVzdA=="
timeout_s = 2.0
retry_schedule_s = [0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3]
"""


def _start(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.webhook_runner", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


class TestWebhookRestart:
    async def test_restart_after_sigkill_resumes_the_retry_backlog(
        self, redis_client: aioredis.Redis, redis_url: str, tmp_path: Path
    ) -> None:
        """Events queued, in retry, or written while the relay was dead all arrive once each."""
        failing = {"on": True}

        async def fails_while_on(_n: int, _id: str) -> int:
            return 500 if failing["on"] else 200

        receiver = Receiver(behaviour=fails_while_on)
        await receiver.start()
        config = tmp_path / "relay.toml"
        config.write_text(CONFIG.format(url=redis_url, hook=receiver.url))
        feed = Feed(redis_client)
        proc = _start(config)
        try:
            group = "webhooks:crash"
            await eventually(lambda: groups_ready(redis_client, ["t:legacy:students"], group))
            district_of: dict[str, str] = {}
            for i in range(6):
                district_of[await feed.legacy("students.updated", f"d{i % 2}")] = f"d{i % 2}"
            await eventually(lambda: _attempts_at_least(redis_client, 2))
            proc.kill()
            proc.wait()
            for i in range(4):
                district_of[await feed.legacy("students.updated", f"d{i % 2}")] = f"d{i % 2}"
            assert await redis_client.hgetall("t:webhooks:attempts:crash") != {}
            failing["on"] = False
            proc = _start(config)
            await eventually(lambda: set(receiver.delivered()) == set(district_of))
            await asyncio.sleep(0.3)  # a negative (no duplicate arrives), so a short wait
        finally:
            proc.terminate()
            proc.wait()
            await receiver.stop()
        delivered = receiver.delivered()
        assert Counter(delivered) == Counter(dict.fromkeys(district_of, 1))
        for district in ("d0", "d1"):
            in_order = [i for i in sorted(district_of) if district_of[i] == district]
            assert [i for i in delivered if district_of[i] == district] == in_order


async def _attempts_at_least(redis: aioredis.Redis, n: int) -> bool:
    return all(
        int(v) >= n for v in (await redis.hgetall("t:webhooks:attempts:crash")).values()
    ) and (await redis.hlen("t:webhooks:attempts:crash") == 2)
