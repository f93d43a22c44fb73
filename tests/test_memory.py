"""memory_limit_mb bounds what spprof holds; past it samples are dropped, counted and reported."""
import os

from conftest import run_workload


def test_memory_limit_bounds_the_profile_and_counts_the_drops():
    proc, out = run_workload("memory_bound", 1, 12, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # ~60 threads x 1000 ticks/s x 12 s of 24-byte samples is far past 1 MiB: the bound must bite
    assert out["collected"] > 2 * out["limit_bytes"] // 24, out
    assert out["peak_held"] <= out["limit_bytes"], out
    assert out["dropped_memory_limit"] > 0 and out["profile_dropped"] >= out["dropped_memory_limit"], out
    assert out["kept"] > 0
    # the process grew by no more than the bound and some slack for the Python side, far less
    # than keeping every sample would take (not under ASan, whose quarantine holds freed memory)
    slack_kib = 1024 + 6144
    assert out["collected"] * 24 // 1024 > 1.5 * slack_kib, out
    if not os.environ.get("SPPROF_SANITIZED"):
        assert out["rss_growth_kib"] < slack_kib, out


def test_memory_use_is_the_stacks_once_not_a_copy_per_sample():
    # the same 60 identical stacks sampled over and over: what is held grows by one small record
    # per sample, not by a copy of the stack
    proc, out = run_workload("memory_bound", 100, 2, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out["dropped_memory_limit"] == 0, out
    queue = 4 * 1024 * 1024
    assert out["peak_held"] < queue + 2 * 24 * out["collected"] + 512 * 1024, out
