"""``clever-relay idmap export``: every crosswalk mapping of a district, streamed to stdout.

Rows (``district, v3_user_id, role, v2_id``) come from HSCAN batches of the crosswalk's v2 hash
(:mod:`relay.readmodel.crosswalk`) and are written as they arrive, so memory stays flat however
large the district; a progress bar on stderr counts them against the hash's size. Only live
mappings are exported; deleted ones stay resolvable over HTTP (``GET /idmap/...``) for their
retention.
"""

from __future__ import annotations

import csv
import sys
from typing import TYPE_CHECKING, Any, TextIO

import msgspec

from relay.errors import ConfigError
from relay.readmodel.crosswalk import CrosswalkReader
from relay.redis.client import create_redis
from relay.redis.keys import Keys

if TYPE_CHECKING:
    from relay.config import Config

COLUMNS = ("district", "v3_user_id", "role", "v2_id")
_encoder = msgspec.json.Encoder()


class _Rows:
    """Writes rows in one format to ``out``."""

    def __init__(self, out: TextIO, fmt: str, district: str) -> None:
        self.out = out
        self.district = district
        self.csv = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
        if self.csv is not None:
            self.csv.writerow(COLUMNS)

    def write(self, rows: list[tuple[str, str, str]]) -> None:
        d = self.district
        if self.csv is not None:
            self.csv.writerows((d, uid, role, v2) for uid, role, v2 in rows)
            return
        self.out.write(
            "".join(
                _encoder.encode(dict(zip(COLUMNS, (d, *row), strict=True))).decode() + "\n"
                for row in rows
            )
        )


def _progress(enabled: bool) -> Any:
    """A rich progress bar on stderr (stdout carries the rows); off when stderr is no terminal."""
    from rich.console import Console
    from rich.progress import Progress

    return Progress(console=Console(file=sys.stderr), transient=False, disable=not enabled)


async def export(cfg: Config, district: str, *, fmt: str, out: TextIO, progress: bool) -> int:
    """Stream the district's mappings to ``out``; returns how many were written.

    Raises:
        ConfigError: ``district`` is not configured.
    """
    if district not in {d.id for d in cfg.clever.districts}:
        known = ", ".join(d.id for d in cfg.clever.districts) or "none"
        raise ConfigError([f"--district: {district} is not configured (configured: {known})"])
    redis = create_redis(cfg.redis)
    written = 0
    try:
        reader = CrosswalkReader(
            redis,
            Keys(cfg.redis.prefix, cfg.redis.partitions),
            keep_s=cfg.v2api.idmap_deleted_retention_s,
        )
        rows = _Rows(out, fmt, district)
        total = await reader.count(district)
        with _progress(progress) as bar:
            task = bar.add_task(f"{district} idmap", total=total)
            async for batch in reader.scan(district):
                rows.write(batch)
                written += len(batch)
                bar.update(task, advance=len(batch))
            bar.update(task, total=written)
        out.flush()
    finally:
        await redis.aclose()
    return written
