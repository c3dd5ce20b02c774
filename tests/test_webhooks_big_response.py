"""An endpoint answering 200 with a 100 MB body costs the sender a few MB, not 100."""

from __future__ import annotations

import gc
from pathlib import Path

from aiohttp import web

from relay.webhooks.sender import Sender
from relay.webhooks.store import QueuedEvent
from tests.redis_server import free_port

BODY_MB = 100
CHUNK = b"x" * (1 << 20)


def rss_kb() -> int:
    """This process's resident set size in kB (from /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_a_huge_response_body_is_not_read(tmp_path: Path) -> None:
    """The send succeeds as 2xx, the endpoint could not push the whole 100 MB, and RSS grows
    by less than 8 MB."""
    written = [0]

    async def huge(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse()
        response.content_length = BODY_MB * len(CHUNK)
        await response.prepare(request)
        try:
            for _ in range(BODY_MB):
                await response.write(CHUNK)
                written[0] += len(CHUNK)
        except (ConnectionError, RuntimeError):
            pass  # the sender hung up, as it should
        return response

    app = web.Application()
    app.router.add_post("/hook", huge)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    sender = Sender(
        url=f"http://127.0.0.1:{port}/hook", keys=[b"k" * 32], timeout_s=120, max_in_flight=1
    )
    sender.open()
    event = QueuedEvent("msg_1", "students.created", "d1", b"{}", "s", "1-0", 0)
    try:
        gc.collect()
        before = rss_kb()
        outcome = await sender.send(event)
        gc.collect()
        after = rss_kb()
    finally:
        await sender.close()
        await runner.cleanup()
    assert (outcome.status_class, outcome.status) == ("2xx", 200)
    assert written[0] < BODY_MB * len(CHUNK)
    assert after - before < 8 * 1024
