"""The sampler's cost for one thread sample, by stack depth, with warm caches.

    .venv/bin/python bench/sample_cost.py

Runs the sampler's tick on the calling thread (spprof._bench.EngineBench), whose own Python
stack is then the one sampled, at depths 1, 32 and 128, in cpu mode; prints the median of 7
batches of 5000 ticks, and the system calls each tick spends reading memory. Each tick is one
call from Python, which adds well under a microsecond. The timer's own wake-up is not included:
bench/overhead.py measures everything together. bench/test_micro.py has the same measurement
under pytest-benchmark.
"""
import platform
import statistics
import sys
import time

from spprof import _bench, _threads

BATCHES, TICKS = 7, 5000


def at_depth(depth, fn):
    """Calls fn with `depth` frames of this module on the stack, counting fn's caller."""
    if depth <= 1:
        return fn()
    return at_depth(depth - 1, fn)


def batch(engine):
    depths = set()
    t0 = time.perf_counter_ns()
    for _ in range(TICKS):
        depths.add(engine.tick())
    return (time.perf_counter_ns() - t0) / TICKS, depths


def main():
    print(f"Python {platform.python_version()}, command: {' '.join([sys.executable, *sys.argv])}")
    print("| stack depth | µs per thread sample (median of 7 × 5000) | min–max | reads per tick |")
    print("|---|---|---|---|")
    _threads.install()  # 3.9/3.10 learn the calling thread's native id from threading
    for depth in (1, 32, 128):
        engine = _bench.EngineBench("cpu", 128)
        runs = [at_depth(depth, lambda: batch(engine)) for _ in range(BATCHES)]
        seen = set().union(*(d for _, d in runs))
        assert -1 not in seen, "a tick without a sample of this thread"
        us = [ns / 1000 for ns, _ in runs]
        reads = engine.reads / (BATCHES * TICKS)
        print(f"| {depth} (sampled {min(seen)}–{max(seen)}) | {statistics.median(us):.2f} | "
              f"{min(us):.2f}–{max(us):.2f} | {reads:.1f} |")


if __name__ == "__main__":
    main()
