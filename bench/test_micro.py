"""Micro-benchmarks under pytest-benchmark: one thread sample by stack depth, the builder's
throughput, and export throughput per format.

    .venv/bin/pytest -p no:cacheprovider bench/test_micro.py --benchmark-columns=median,iqr,rounds
    .venv/bin/pytest -p no:cacheprovider bench/test_micro.py --benchmark-disable   # each once, as CI does

The sampler's tick and the collector's drain are driven on the calling thread through
spprof._bench.EngineBench (no timer, no wake-up: bench/overhead.py measures those). A thread
sample is taken of the benchmark's own thread, a fresh thread whose stack is the given number of
frames of this file plus the few of threading and pytest-benchmark beneath them; the depth really
sampled is in each result's extra_info. Throughputs are in extra_info too (samples per second).
Timings are reported, never asserted; the asserts check that the work measured was done.
"""
import threading

import pytest

from save_speed import build_profile
from spprof import _bench, _threads
from spprof.formats import FORMATS

EXPORT_SAMPLES = 50_000


def at_depth(depth, fn):
    if depth <= 1:
        return fn()
    return at_depth(depth - 1, fn)


def in_fresh_thread(fn):
    """Runs fn on a new thread (a shallow stack, unlike pytest's) and returns what it returned."""
    out = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as e:  # handed to the test's thread
            out["error"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


@pytest.fixture(scope="module", autouse=True)
def native_ids():
    _threads.install()  # 3.9/3.10 learn native thread ids from threading


@pytest.mark.parametrize("depth", [1, 32, 128])
def test_one_thread_sample(benchmark, depth):
    engine = _bench.EngineBench("cpu", 256)
    sampled = in_fresh_thread(lambda: at_depth(depth, lambda: benchmark(engine.tick)))
    benchmark.extra_info["sampled_depth"] = sampled
    assert depth <= sampled < depth + 16, sampled  # this thread's stack, whole
    assert engine.torn == 0


def test_builder_throughput(benchmark):
    # 1000 samples of stacks 1 to 64 deep, queued by real ticks, then interned and named; the
    # stacks repeat from round to round, as a hot program's do
    engine = _bench.EngineBench("cpu", 128)
    per_fill = 1000

    def fill():
        for d in range(1, 65):
            at_depth(d, lambda: engine.fill(per_fill // 64))
        return (), {}

    taken = in_fresh_thread(lambda: benchmark.pedantic(engine.drain, setup=fill, rounds=20))
    assert taken >= per_fill // 64 * 64, taken  # and any other thread that ran
    if benchmark.stats:
        benchmark.extra_info["samples_per_s"] = round(taken / benchmark.stats.stats.median)


@pytest.fixture(scope="module")
def big_profile():
    return build_profile(EXPORT_SAMPLES)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_export(benchmark, big_profile, fmt, tmp_path):
    path = tmp_path / "profile"
    benchmark.pedantic(big_profile.save, args=(str(path),), kwargs={"format": fmt}, rounds=3)
    n = len(big_profile._data)
    assert n >= EXPORT_SAMPLES and path.stat().st_size > 0
    benchmark.extra_info["samples"] = n
    benchmark.extra_info["bytes"] = path.stat().st_size
    if benchmark.stats:
        benchmark.extra_info["samples_per_s"] = round(n / benchmark.stats.stats.median)
