"""The naive baseline: the relay as a typical quick integration would write it. Synchronous HTTP
(``urllib``), ``json``, plain dicts, one ``XADD`` round trip per event and per legacy event, the
cursor saved after each page (not atomically with the events), districts polled one after the
other, the translation done inline in the same loop. It keeps the user snapshots it needs for
``users.updated`` in a Python dict (generous: a real one would read them from Redis). It is no
strawman: pages are as large as the relay's and the Redis client is redis-py with hiredis. It
writes the same keys as the relay, so its output can be counted the same way (its legacy counts
differ slightly: no teacher-id look-ups, no previous-attributes rebuilding, no dead letters).
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import TYPE_CHECKING, Any

from bench.configs import PREFIX

if TYPE_CHECKING:
    import redis

    from bench.procs import SimDistrict

ROLES = {
    "student": "students",
    "teacher": "teachers",
    "staff": "schooladmins",
    "district_admin": "districtadmins",
    "contact": "contacts",
}
TIMESTAMPS = ("created", "last_modified")


def fetch_page(base_url: str, token: str, after: str | None, limit: int) -> list[dict[str, Any]]:
    """One page of ``/v3.0/events`` as a list of event dicts."""
    url = f"{base_url}/v3.0/events?limit={limit}"
    if after:
        url += f"&starting_after={after}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        body = json.loads(resp.read())
    return [item["data"] for item in body["data"]]


def user_objects(user: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """One v2-ish dict per role of a v3 user, keyed by legacy record type."""
    if not user:
        return {}
    out = {}
    for role, record_type in ROLES.items():
        fields = (user.get("roles") or {}).get(role)
        if fields is None:
            continue
        obj = {k: v for k, v in fields.items() if k != "legacy_id"}
        obj.update(
            id=fields.get("legacy_id") or user["id"] if role != "student" else user["id"],
            district=user.get("district"),
            name=user.get("name"),
            email=user.get("email"),
            created=user.get("created"),
            last_modified=user.get("last_modified"),
        )
        out[record_type] = obj
    return out


def _visible(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in TIMESTAMPS}


def translate_user(
    event: dict[str, Any], users: dict[str, dict[str, Any]]
) -> list[tuple[str, str, dict[str, Any]]]:
    """Legacy (record type, event type, object) triples for one ``users.*`` event."""
    obj = event["data"]["object"]
    action = event["type"].split(".")[1]
    before = user_objects(users.get(obj["id"]))
    if action == "deleted":
        users.pop(obj["id"], None)
        return [(rt, f"{rt}.deleted", o) for rt, o in (before or user_objects(obj)).items()]
    users[obj["id"]] = obj
    after = user_objects(obj)
    out = []
    for rt, new in after.items():
        old = before.get(rt)
        if old is None:
            out.append((rt, f"{rt}.created", new))
        elif _visible(old) != _visible(new):
            out.append((rt, f"{rt}.updated", new))
    out.extend((rt, f"{rt}.deleted", old) for rt, old in before.items() if rt not in after)
    return out


def translate(
    event: dict[str, Any], users: dict[str, dict[str, Any]]
) -> list[tuple[str, str, dict[str, Any]]]:
    """Legacy triples for any event (non-user records pass through as they are)."""
    record_type = event["type"].split(".")[0]
    if record_type == "users":
        return translate_user(event, users)
    if record_type == "resources":
        return []
    return [(record_type, event["type"], event["data"]["object"])]


def run(
    client: redis.Redis, base_url: str, districts: list[SimDistrict], page_limit: int = 1000
) -> tuple[int, int, float]:
    """Relay every district's feed into Redis; returns (events, legacy events, seconds)."""
    started = time.perf_counter()
    events = legacy = 0
    users: dict[str, dict[str, Any]] = {}
    for district in districts:
        after: Any = client.get(f"{PREFIX}:cursor:{district.id}")
        cursor = after.decode() if after else None
        while True:
            page = fetch_page(base_url, district.token, cursor, page_limit)
            if not page:
                break
            for event in page:
                client.xadd(
                    f"{PREFIX}:events",
                    {
                        "id": event["id"],
                        "type": event["type"],
                        "district": district.id,
                        "data": json.dumps(event),
                    },
                )
                events += 1
                for record_type, event_type, obj in translate(event, users):
                    v2 = {"type": event_type, "created": event["created"], "data": {"object": obj}}
                    client.xadd(
                        f"{PREFIX}:legacy:{record_type}",
                        {
                            "id": event["id"],
                            "type": event_type,
                            "district": district.id,
                            "source": event["id"],
                            "data": json.dumps(v2),
                        },
                    )
                    legacy += 1
            cursor = page[-1]["id"]
            client.set(f"{PREFIX}:cursor:{district.id}", cursor)
    return events, legacy, time.perf_counter() - started
