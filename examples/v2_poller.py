"""A Clever v2 event-polling loop, written the way legacy v2 consumers are.

Nothing in it knows about the relay: point ``CLEVER_BASE_URL`` at the relay instead of
``https://api.clever.com`` and ``CLEVER_TOKEN`` at the relay-issued key, and it keeps working.
It remembers the last event id it processed, asks ``/v2.1/events?starting_after=<id>``, follows
``next`` links until a page comes back empty, then sleeps and polls again. On first start it
begins at the newest event (``ending_before=last&limit=1``), as Clever recommends after an
initial Data API sync.

Run: ``CLEVER_BASE_URL=http://127.0.0.1:8080 CLEVER_TOKEN=... python examples/v2_poller.py``
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator


def get(base_url: str, token: str, uri: str) -> dict[str, Any]:
    """GET a relative Clever URI (``/v2.1/...``) with the bearer token; the decoded JSON."""
    request = urllib.request.Request(
        base_url.rstrip("/") + uri, headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body: dict[str, Any] = json.load(response)
    return body


def newest_event_id(base_url: str, token: str) -> str | None:
    """The id of the newest event, or None when there is none yet."""
    page = get(base_url, token, "/v2.1/events?ending_before=last&limit=1")
    return page["data"][-1]["data"]["id"] if page["data"] else None


def events_after(
    base_url: str, token: str, starting_after: str | None, *, limit: int = 100
) -> Iterator[dict[str, Any]]:
    """Every event after ``starting_after``, following ``next`` links to the first empty page."""
    uri = f"/v2.1/events?limit={limit}"
    if starting_after is not None:
        uri += f"&starting_after={starting_after}"
    while True:
        page = get(base_url, token, uri)
        if not page["data"]:
            return
        for item in page["data"]:
            yield item["data"]
        uri = next(link["uri"] for link in page["links"] if link["rel"] == "next")


def main() -> int:
    """Poll forever, printing one line per event."""
    base_url = os.environ.get("CLEVER_BASE_URL", "https://api.clever.com")
    token = os.environ["CLEVER_TOKEN"]
    last = newest_event_id(base_url, token)
    while True:
        for event in events_after(base_url, token, last):
            obj = event["data"]["object"]
            print(f"{event['id']} {event['type']} {obj.get('id')}", flush=True)
            last = event["id"]
        time.sleep(5)


if __name__ == "__main__":
    sys.exit(main())
