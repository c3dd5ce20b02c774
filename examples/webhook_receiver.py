"""A webhook receiver for clever-relay that verifies Standard Webhooks signatures.

Run: ``WEBHOOK_SECRET=whsec_... python examples/webhook_receiver.py --port 9000`` and point an
endpoint's ``url`` at ``http://host:9000/hooks/clever``. It depends only on aiohttp and the
standard library, so it can be copied into a consumer's code base. It:

* rejects a request whose ``webhook-timestamp`` is more than 5 minutes away from now (replays);
* accepts it when any ``v1,`` signature in ``webhook-signature`` matches (rotation sends one per
  secret), comparing in constant time; ``WEBHOOK_SECRET`` may hold several secrets too;
* de-duplicates by ``webhook-id``: delivery is at-least-once, so the same event can arrive twice
  (a real receiver keeps the seen ids in its database, in the same transaction as the effect).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import time

from aiohttp import web

TOLERANCE_S = 300
SEEN: set[str] = set()


def expected_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` under the decoded secret."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def is_authentic(secrets: list[str], headers: dict[str, str], body: bytes) -> bool:
    """Whether the request is fresh and signed with one of ``secrets``."""
    msg_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    if not msg_id or not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TOLERANCE_S:
        return False
    received = headers.get("webhook-signature", "").split()
    ok = False
    for secret in secrets:
        wanted = expected_signature(secret, msg_id, timestamp, body).encode()
        for candidate in received:
            ok |= hmac.compare_digest(candidate.encode(), wanted)
    return ok


async def handle(request: web.Request) -> web.Response:
    """Verify, de-duplicate, then process one event."""
    body = await request.read()
    secrets = os.environ.get("WEBHOOK_SECRET", "").split()
    if not is_authentic(secrets, dict(request.headers), body):
        return web.Response(status=401)
    msg_id = request.headers["webhook-id"]
    if msg_id in SEEN:
        return web.Response(status=204)  # already processed: acknowledge again
    event = json.loads(body)
    print(f"{msg_id} {event.get('type')}")  # your processing goes here
    SEEN.add(msg_id)
    return web.Response(status=204)


def main() -> None:
    """Serve ``POST /hooks/clever``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_post("/hooks/clever", handle)
    web.run_app(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
