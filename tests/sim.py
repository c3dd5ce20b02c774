"""Test helpers for the Clever simulator: subprocess start, scenario worlds, event builders.

``start_simulator_process`` runs the real ``python -m relay simulate`` (for crash and CLI tests);
the builders make exact scenario events for ``World.from_bytes`` or ``POST /_sim/events``.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
import urllib.request
from typing import Any

import msgspec

from relay.simulator import World, token_for
from tests.redis_server import free_port

_serial = itertools.count(1)
DISTRICT = "5a0c91b95c7cc000010d417c"
"""Clever's demo district id, the default district of scenario helpers."""


def object_id(n: int, ts: int = 0x6A000000) -> str:
    """A deterministic ObjectId: ``ts`` seconds, then ``n`` in the low bytes."""
    return f"{ts:08x}{n:016x}"


def wait_until_answers(base_url: str, *, timeout_s: float = 30.0) -> None:
    """Poll ``GET /_sim/districts`` until it answers 200 (raises TimeoutError)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{base_url}/_sim/districts", timeout=1.0) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"simulator at {base_url} did not answer")
        time.sleep(0.05)


def start_simulator_process(
    args: list[str] | None = None, *, timeout_s: float = 30.0
) -> tuple[subprocess.Popen[bytes], str]:
    """Run ``python -m relay simulate <args> --port <free>``; returns (process, base_url)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "relay", "simulate", *(args or []), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(base_url, timeout_s=timeout_s)
    except TimeoutError:
        proc.kill()
        proc.wait()
        raise
    return proc, base_url


def user(
    user_id: str | None = None,
    *,
    roles: dict[str, Any] | None = None,
    district: str = DISTRICT,
    first: str = "Ada",
    last: str = "Lovelace",
    email: str | None = "ada@example.net",
) -> dict[str, Any]:
    """A v3 user record (a student at one school unless ``roles`` says otherwise)."""
    n = next(_serial)
    uid = user_id or object_id(n, 0x60000000)
    school = object_id(1, 0x5A000000)
    return {
        "created": "2026-01-01T00:00:00.000Z",
        "district": district,
        "email": email,
        "last_modified": "2026-01-01T00:00:00.000Z",
        "name": {"first": first, "last": last},
        "id": uid,
        "roles": roles
        if roles is not None
        else {
            "student": {
                "credentials": {"district_username": f"s{n}"},
                "school": school,
                "schools": [school],
                "sis_id": str(n),
                "enrollments": [],
            }
        },
    }


def event(
    event_type: str,
    obj: dict[str, Any],
    *,
    event_id: str | None = None,
    previous_attributes: dict[str, Any] | None = None,
    created: str | None = None,
) -> dict[str, Any]:
    """A Clever v3 event as served (``previous_attributes`` inside ``data``)."""
    data: dict[str, Any] = {"object": obj}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    out: dict[str, Any] = {"type": event_type, "data": data}
    if event_id is not None:
        out["id"] = event_id
    if created is not None:
        out["created"] = created
    return out


def user_created(obj: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    """A ``users.created`` event for ``obj`` (default: a fresh student)."""
    return event("users.created", obj or user(), **kw)


def scenario(events: list[dict[str, Any]], *, district: str = DISTRICT, seed: int = 1) -> World:
    """A one-district world holding exactly ``events`` (token ``sim_<district>``)."""
    body = {"districts": [{"id": district, "token": token_for(district), "events": events}]}
    return World.from_bytes(msgspec.json.encode(body), seed=seed)
