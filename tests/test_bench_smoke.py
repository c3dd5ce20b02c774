"""Smoke test of the benchmark suite: the quick variant completes with exact counts.

Latency is not checked here: on a loaded CI machine a one-second latency phase may collect no
sample at all, and speed belongs to ``python -m bench`` and ``docs/performance.md``, not to CI.
"""

from __future__ import annotations

from bench.run import Options, run


class TestBenchSmoke:
    """``python -m bench`` at N = 5,000: every phase runs and every count is exact."""

    def test_bench_quick_run_counts_exact(self) -> None:
        """One repetition relays exactly N events and the same legacy events in every phase."""
        results = run(Options(events=5000, runs=1, latency_runs=0, poll_interval_s=0.5))
        counts = results.counts
        legacy = counts["e2e_legacy"][0]
        assert results.events == 5000
        assert {
            name: counts[name]
            for name in ("e2e_events", "poller_events", "naive_events", "e2e_deadletter")
        } == {
            "e2e_events": [5000],
            "poller_events": [5000],
            "naive_events": [5000],
            "e2e_deadletter": [0],
        }
        assert legacy > 5000
        assert counts["translator_legacy"] == [legacy]
        assert counts["e2e_page10k_legacy"] == [legacy]
        assert counts["limit_entries"] == [5000 + legacy]
        assert results.latency == []
