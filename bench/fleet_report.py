"""The fleet bench's Markdown table and its PNG plot (CPU and RSS against N).

The PNG is drawn without a plotting library (a dependency for one picture is not worth it):
lines on a pixel grid, a 5x7 bitmap font for the few labels, zlib and the PNG chunk format.
"""

from __future__ import annotations

import itertools
import struct
import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from bench.fleet import Options, Result, Row

W, H = 760, 340
PANEL_W, PANEL_H = 300, 220
ORIGINS = ((70, 270), (440, 270))
RELAY, BARE, GOAL, INK, GRID = (200, 40, 40), (40, 90, 200), (150, 150, 150), (0, 0, 0), (225,) * 3

_FONT = {
    "0": "01110100011001110101110011000101110",
    "1": "00100011000010000100001000010001110",
    "2": "01110100010000100010001000100011111",
    "3": "11111000100010000010000011000101110",
    "4": "00010001100101010010111110001000010",
    "5": "11111100001111000001000011000101110",
    "6": "00110010001000011110100011000101110",
    "7": "11111000010001000100010000100001000",
    "8": "01110100011000101110100011000101110",
    "9": "01110100011000101111000010001001100",
    ".": "00000000000000000000000000110001100",
    " ": "0" * 35,
    "A": "01110100011000111111100011000110001",
    "B": "11110100011000111110100011000111110",
    "C": "01110100011000010000100001000101110",
    "D": "11100100101000110001100011001011100",
    "E": "11111100001000011110100001000011111",
    "I": "01110001000010000100001000010001110",
    "L": "10000100001000010000100001000011111",
    "M": "10001110111010110101100011000110001",
    "N": "10001100011100110101100111000110001",
    "O": "01110100011000110001100011000101110",
    "P": "11110100011000111110100001000010000",
    "R": "11110100011000111110101001001010001",
    "S": "01111100001000001110000010000111110",
    "T": "11111001000010000100001000010000100",
    "U": "10001100011000110001100011000101110",
    "X": "10001100010101000100010101000110001",
    "Y": "10001100011000101010001000010000100",
    "(": "00010001000100001000010000010000010",
    ")": "01000001000001000010000100010001000",
    "/": "00000000010001000100010001000000000",
    "=": "00000000001111100000111110000000000",
    "-": "00000000000000011111000000000000000",
}


def render(result: Result, opts: Options) -> str:
    """The Markdown report: one row per N, then the lease figures."""
    lines = [
        f"Poll interval {opts.interval_s:g} s, {opts.window_s:g} s measured per subject and N, "
        f"trickle {opts.trickle_per_s:g} events/s across all districts.",
        "",
        "| districts | relay CPU (cores) | bare loop CPU | ratio | relay RSS (MB) | bare RSS "
        "| Clever req/s relay / bare | all polled after (s) relay / bare | Redis cmds/s "
        "| trickle p99 lag (s) | /metrics KB, ms | /status KB, ms | simulator CPU relay / bare |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result.rows:
        lines.append(_row(row))
    leases = result.leases
    if leases is not None:
        lines += [
            "",
            f"Leases: {leases.districts} districts, {leases.replicas} poller replicas, lease TTL "
            f"{leases.lease_ttl_s:g} s: settled {leases.settle_s} s after start; "
            f"{leases.scripts_per_tick} lease script calls per tick per replica once settled "
            f"({leases.redis_commands_per_s} Redis commands/s in all); one replica leaving: "
            f"settled in {leases.leave_settle_s} s, {leases.leave_moved} districts moved "
            f"(its own: {leases.leave_minimum}); one joining: settled in "
            f"{leases.join_settle_s} s, {leases.join_moved} moved (its share: "
            f"{leases.join_minimum}).",
        ]
    return "\n".join(lines)


def _row(row: Row) -> str:
    r, b = row.relay, row.bare
    lag = "-" if r.lag_p99_s is None else f"{r.lag_p99_s:.2f} ({r.lag_events} events)"
    cells = [
        str(row.districts),
        f"{r.cpu_cores:.3f}",
        f"{b.cpu_cores:.3f}",
        f"{row.ratio:.2f}x",
        f"{r.rss_mb:.0f}",
        f"{b.rss_mb:.0f}",
        f"{r.requests_per_s:.0f} / {b.requests_per_s:.0f}",
        f"{r.all_polled_s:.1f} / {b.all_polled_s:.1f}",
        f"{r.redis_commands_per_s:.0f}",
        lag,
        f"{r.metrics_kb:.0f}, {r.metrics_ms:.0f}",
        f"{r.status_kb:.0f}, {r.status_ms:.0f}",
        f"{r.sim_cpu_cores:.2f} / {b.sim_cpu_cores:.2f}",
    ]
    return "| " + " | ".join(cells) + " |"


class _Canvas:
    def __init__(self) -> None:
        self.px = bytearray(b"\xff" * (W * H * 3))

    def dot(self, x: int, y: int, color: tuple[int, int, int]) -> None:
        if 0 <= x < W and 0 <= y < H:
            i = (y * W + x) * 3
            self.px[i : i + 3] = bytes(color)

    def line(self, a: tuple[int, int], b: tuple[int, int], color: tuple[int, int, int]) -> None:
        steps = max(abs(b[0] - a[0]), abs(b[1] - a[1]), 1)
        for s in range(steps + 1):
            x = a[0] + (b[0] - a[0]) * s // steps
            y = a[1] + (b[1] - a[1]) * s // steps
            for dx in (0, 1):
                for dy in (0, 1):
                    self.dot(x + dx, y + dy, color)

    def text(self, x: int, y: int, text: str, color: tuple[int, int, int] = INK) -> None:
        for n, ch in enumerate(text.upper()):
            glyph = _FONT.get(ch, _FONT[" "])
            for k, bit in enumerate(glyph):
                if bit == "1":
                    self.dot(x + n * 6 + k % 5, y + k // 5, color)

    def png(self) -> bytes:
        raw = b"".join(b"\x00" + bytes(self.px[y * W * 3 : (y + 1) * W * 3]) for y in range(H))

        def chunk(kind: bytes, data: bytes) -> bytes:
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        header = struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )


def _panel(
    canvas: _Canvas,
    origin: tuple[int, int],
    title: str,
    xs: list[int],
    series: list[tuple[list[float], tuple[int, int, int]]],
) -> None:
    ox, oy = origin
    top = max(max(values) for values, _ in series) * 1.15 or 1.0
    span = max(xs) or 1
    canvas.line((ox, oy), (ox + PANEL_W, oy), INK)
    canvas.line((ox, oy), (ox, oy - PANEL_H), INK)
    canvas.text(ox, oy - PANEL_H - 16, title)
    for k in range(1, 5):
        y = oy - PANEL_H * k // 4
        canvas.line((ox + 2, y), (ox + PANEL_W, y), GRID)
        canvas.text(ox - 40, y - 3, f"{top * k / 4:.2f}" if top < 10 else f"{top * k / 4:.0f}")
    for x in xs:
        px = ox + PANEL_W * x // span
        canvas.line((px, oy), (px, oy + 4), INK)
        canvas.text(px - 12, oy + 8, str(x))
    canvas.text(ox + PANEL_W // 2 - 27, oy + 22, "DISTRICTS")
    for values, color in series:
        points = [
            (ox + PANEL_W * x // span, oy - int(PANEL_H * v / top))
            for x, v in zip(xs, values, strict=True)
        ]
        for a, b in itertools.pairwise(points):
            canvas.line(a, b, color)
        for p in points:
            for dx in range(-2, 3):
                for dy in range(-2, 3):
                    canvas.dot(p[0] + dx, p[1] + dy, color)


def plot_png(rows: list[Row], path: Path) -> None:
    """CPU (relay, bare loop, 1.25x the bare loop) and RSS (relay, bare) against N."""
    canvas = _Canvas()
    xs = [row.districts for row in rows]
    bare = [row.bare.cpu_cores for row in rows]
    _panel(
        canvas,
        ORIGINS[0],
        "CPU (CORES)",
        xs,
        [
            ([1.25 * b for b in bare], GOAL),
            (bare, BARE),
            ([r.relay.cpu_cores for r in rows], RELAY),
        ],
    )
    _panel(
        canvas,
        ORIGINS[1],
        "RSS (MB)",
        xs,
        [([r.bare.rss_mb for r in rows], BARE), ([r.relay.rss_mb for r in rows], RELAY)],
    )
    canvas.text(W - 130, 20, "RELAY", RELAY)
    canvas.text(W - 130, 32, "BARE LOOP", BARE)
    canvas.text(W - 130, 44, "1.25X BARE", GOAL)
    path.write_bytes(canvas.png())
