"""Benchmarks of the relay (issue 7): throughput, latency and memory, against a naive baseline
and the Redis limit, on this machine. Run ``python -m bench --help``; results: docs/performance.md.
"""
