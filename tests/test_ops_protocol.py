"""Malformed HTTP against ``clever-relay run``: no key in any output, one log line per request."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

import aiohttp

from relay import logs
from relay.ops.protocol import LOG_BURST, LOG_WINDOW_S, ProtocolLogger
from tests.redis_server import free_port

if TYPE_CHECKING:
    from pathlib import Path

KEY = "v2key-never-to-be-seen-anywhere-7f3a9c"
CLEVER_TOKEN = "clever-token-for-the-protocol-test"
BAD_REQUESTS = [
    # A control byte after the key: the header value does not parse.
    f"GET /v2.1/students HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\x01\r\n\r\n",
    # One header line of more than 8190 bytes, holding the key.
    f"GET /v2.1/students HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}{'a' * 9000}\r\n\r\n",
    # The key where the method belongs.
    f"{KEY}\x01 /v2.1/students HTTP/1.1\r\nHost: x\r\n\r\n",
]


def _write_config(path: Path, redis_url: str, port: int) -> None:
    path.write_text(
        '[relay]\ncomponents = ["http", "v2api"]\nshutdown_grace_s = 5.0\n\n'
        f'[[clever.districts]]\nid = "d1"\ntoken = "{CLEVER_TOKEN}"\n\n'
        f'[redis]\nurl = "{redis_url}"\nprefix = "proto"\n\n'
        f'[http]\nhost = "127.0.0.1"\nport = {port}\n\n'
        '[[v2api.clients]]\nname = "lms"\ndistrict = "d1"\ntoken_env = "PROTO_V2_KEY"\n'
    )


async def _raw(port: int, request: str) -> bytes:
    """Send ``request`` as bytes on a fresh connection; everything the server answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request.encode("latin-1"))
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout=60)
    finally:
        writer.close()


async def _wait_ready(port: int) -> None:
    """Wait until the ops server answers /healthz."""
    async with asyncio.timeout(60), aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)


class TestMalformedRequests:
    """Requests aiohttp cannot parse never reach a handler, and never leak or flood."""

    async def test_malformed_requests_never_show_the_key(
        self, redis_url: str, tmp_path: Path
    ) -> None:
        """Each malformed request gets a JSON 4xx without its bytes and one scrubbed log line;
        the key is nowhere in the responses, stdout or stderr."""
        port = free_port()
        config = tmp_path / "relay.toml"
        _write_config(config, redis_url, port)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "relay",
            "run",
            "--config",
            str(config),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PROTO_V2_KEY": KEY},
        )
        try:
            await _wait_ready(port)
            answers = [await _raw(port, request) for request in BAD_REQUESTS]
        finally:
            proc.send_signal(signal.SIGTERM)
            stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)
        heads = [answer.split(b"\r\n", 1)[0] for answer in answers]
        bodies = [answer.split(b"\r\n\r\n", 1)[1] for answer in answers]
        assert heads == [
            b"HTTP/1.0 400 Bad Request",
            b"HTTP/1.0 400 Bad Request",
            b"HTTP/1.0 400 Bad Request",
        ]
        assert [json.loads(body) for body in bodies] == [{"message": "bad request"}] * 3
        assert all(b"Content-Type: application/json" in answer for answer in answers)
        for output in (stdout, stderr, *answers):
            assert KEY.encode() not in output
            assert b"v2key-never" not in output
        assert stderr == b""
        events = [json.loads(line) for line in stdout.splitlines()]
        bad = [event for event in events if event["event"] == "http_bad_request"]
        assert [(e["level"], e["status"], e["component"]) for e in bad] == [
            ("warning", 400, "http")
        ] * 3
        assert proc.returncode == 0


class TestProtocolLogger:
    """The protocol logger's rate limit."""

    def test_at_most_a_burst_per_window_then_the_count_of_what_was_held(self) -> None:
        """15 bad requests in one window write 10 lines; the first line of the next window
        says 5 were suppressed."""
        out = io.StringIO()
        logs.configure(level="info", stream=out, cache=False)
        now = [1000.0]
        logger = ProtocolLogger(clock=lambda: now[0])
        error = _bad_message()
        for _ in range(15):
            logger.exception("Error handling request from %s", "127.0.0.1", exc_info=error)
        now[0] += LOG_WINDOW_S
        logger.exception("Error handling request from %s", "127.0.0.1", exc_info=error)
        lines = [json.loads(line) for line in out.getvalue().splitlines()]
        assert [(line["event"], line.get("suppressed")) for line in lines] == [
            ("http_bad_request", None)
        ] * LOG_BURST + [("http_bad_request", 5)]
        assert {line["error"] for line in lines} == {"BadHttpMessage"}


def _bad_message() -> BaseException:
    """A parser error as aiohttp raises it, its message quoting request bytes."""
    from aiohttp.http_exceptions import BadHttpMessage

    return BadHttpMessage(f"Invalid header value char:\n\n  b'Bearer {KEY}\\x01'")
