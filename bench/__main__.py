"""``python -m bench``: run the benchmarks and print the Markdown report (see bench/run.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.report import render
from bench.run import Options, run


def main() -> None:
    """Parse flags, measure, print (and optionally save) the report."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    add = parser.add_argument
    add("--events", type=int, default=200_000, help="events preloaded in the simulator")
    add("--districts", type=int, default=4)
    add("--runs", type=int, default=3, help="repetitions; figures are medians")
    add("--seed", type=int, default=7)
    add("--page-limit", type=int, default=1000)
    add("--poll-interval", type=float, default=1.0, help="poll_interval_s of the relay")
    add("--latency-rate", type=float, default=2000.0, help="live events/s, all districts")
    add("--latency-seconds", type=float, default=20.0, help="length of one latency window")
    add("--latency-runs", type=int, default=3)
    add("--no-baseline", action="store_true", help="skip the naive baseline")
    add("--output", type=Path, help="also write the report to this file")
    args = parser.parse_args()
    options = Options(
        events=args.events,
        districts=args.districts,
        runs=args.runs,
        seed=args.seed,
        page_limit=args.page_limit,
        poll_interval_s=args.poll_interval,
        latency_rate=args.latency_rate,
        latency_seconds=args.latency_seconds,
        latency_runs=args.latency_runs,
        baseline=not args.no_baseline,
    )
    report = render(run(options))
    print(report)
    if args.output:
        args.output.write_text(report)


if __name__ == "__main__":
    main()
