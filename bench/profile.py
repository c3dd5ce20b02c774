"""``python -m bench.profile``: where the relay's time goes, with py-spy (``pip install py-spy``).

Runs the poller and the translator, each under ``py-spy record`` (sampling, native frames off),
over a preloaded simulator, end to end; then prints each process's top functions by self time
and by inclusive time, from py-spy's collapsed stacks. Not part of ``python -m bench``: py-spy
is an optional tool, and sampling costs a little CPU on a 2-core machine.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.configs import relay_config
from bench.procs import RedisProc, SimProc, stop_process
from bench.relay_runs import poller_done, translator_done

TOP = 25


def _spawn(py_spy: str, config: Path, out: Path) -> subprocess.Popen[bytes]:
    args = [py_spy, "record", "-r", "200", "-f", "raw", "-o", str(out), "--"]
    args += [sys.executable, "-m", "relay", "run", "--config", str(config)]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop_child(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the relay under py-spy (py-spy then writes its file and exits)."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    for child in children:
        os.kill(int(child), signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        stop_process(proc)


def summarize(path: Path, top: int = TOP) -> list[str]:
    """Top functions by self and inclusive samples from a collapsed-stacks file."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = stack.split(";")
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    lines = [f"{path.name}: {samples} samples", "  self:"]
    lines += [f"    {n / samples:6.1%}  {f}" for f, n in own.most_common(top)]
    lines.append("  inclusive:")
    lines += [f"    {n / samples:6.1%}  {f}" for f, n in total.most_common(top)]
    return lines


def main() -> None:
    """Profile one end-to-end run and print the summaries."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--districts", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="bench-prof-")))
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    redis_proc = RedisProc()
    sim = SimProc(seed=7, districts=args.districts, events_per_district=args.events // 4)
    try:
        districts = sim.districts()
        outs = {name: args.out / f"{name}.txt" for name in ("poller", "translator")}
        procs = []
        for name, out in outs.items():
            config = relay_config(
                args.out,
                name=name,
                components=[name],
                base_url=sim.base_url,
                redis_url=redis_proc.url,
                districts=districts,
            )
            procs.append(_spawn(py_spy, config, out))
        client = redis_proc.client()
        started = time.time()
        for done in (poller_done(client, districts), translator_done(client)):
            while not done():
                time.sleep(0.05)
        print(f"end to end under py-spy: {time.time() - started:.1f} s")
        for proc in procs:
            _stop_child(proc)
        for path in outs.values():
            print("\n".join(summarize(path)))
    finally:
        sim.close()
        redis_proc.close()


if __name__ == "__main__":
    main()
