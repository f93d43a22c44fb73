"""The sampler's cost for one thread sample, by stack depth, with warm caches.

    .venv/bin/python bench/sample_cost.py

Runs the sampler's tick on the calling thread (spprof._native.measure_tick), whose own Python
stack is then the one sampled, at depths 1, 32 and 128, in cpu mode; prints the median of 7
batches of 5000 ticks, and the system calls each tick spends reading memory. The timer's own
wake-up is not included: bench/overhead.py measures everything together.
"""
import platform
import statistics
import sys

from spprof import _native, _threads

BATCHES, TICKS = 7, 5000


def at_depth(depth, fn):
    if depth <= 1:
        return fn()
    return at_depth(depth - 1, fn)


def main():
    print(f"Python {platform.python_version()}, command: {' '.join([sys.executable, *sys.argv])}")
    print("| stack depth | µs per thread sample (median of 7 × 5000) | min–max | reads per tick |")
    print("|---|---|---|---|")
    _threads.install()  # 3.9/3.10 learn the calling thread's native id from threading
    for depth in (1, 32, 128):
        runs = [at_depth(depth, lambda: _native.measure_tick(TICKS, "cpu", 128)) for _ in range(BATCHES)]
        us = [r["ns_per_tick"] / 1000 for r in runs]
        assert all(r["samples"] == TICKS for r in runs), runs  # every tick sampled this thread
        reads = runs[-1]["reads"] / TICKS
        print(f"| {depth} | {statistics.median(us):.2f} | {min(us):.2f}–{max(us):.2f} | {reads:.1f} |")


if __name__ == "__main__":
    main()
