"""Relay config files for benchmark processes (TOML written to a temp dir)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.procs import SimDistrict

PREFIX = "bench"


def relay_config(
    directory: Path,
    *,
    name: str,
    components: list[str],
    base_url: str,
    redis_url: str,
    districts: list[SimDistrict],
    page_limit: int = 1000,
    poll_interval_s: float = 1.0,
    batch_size: int = 500,
    partitions: int = 1,
    lease_ttl_s: float = 15.0,
) -> Path:
    """Write one process's config; every district starts at its earliest event."""
    q = json.dumps  # a JSON string is a valid TOML basic string
    lines = [
        "[relay]",
        f"components = {json.dumps(components)}",
        f"instance = {q(name)}",
        "shutdown_grace_s = 5.0",
        "[clever]",
        f"base_url = {q(base_url)}",
        f"page_limit = {page_limit}",
        f"poll_interval_s = {poll_interval_s}",
        "[redis]",
        f"url = {q(redis_url)}",
        f"prefix = {q(PREFIX)}",
        "events_maxlen = 10000000",
        "legacy_maxlen = 10000000",
        f"partitions = {partitions}",
        "[legacy]",
        f"batch_size = {batch_size}",
        "block_ms = 100",
        f"lease_ttl_s = {lease_ttl_s}",
        "[log]",
        'level = "warning"',
    ]
    for district in districts:
        lines += [
            "[[clever.districts]]",
            f"id = {q(district.id)}",
            f"token = {q(district.token)}",
            'start = "earliest"',
        ]
    path = directory / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path
