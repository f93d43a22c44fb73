"""Thousands of start()/stop() cycles leave no thread, descriptor or memory behind.
SPPROF_CHURN_CYCLES sets the count (10000 by default)."""
import os

from conftest import run_workload


def test_start_stop_churn_returns_to_the_baseline():
    cycles = int(os.environ.get("SPPROF_CHURN_CYCLES", "10000"))
    proc, out = run_workload("churn", cycles, timeout=60 + cycles * 0.05)
    assert proc.returncode == 0, proc.stderr[-3000:]
    before, after = out["before"], out["after"]
    assert out["samples"] > 0
    assert after["threads"] == before["threads"], out
    assert after["fds"] == before["fds"], out
    if not os.environ.get("SPPROF_SANITIZED"):  # ASan's quarantine holds freed memory on purpose
        assert after["rss_kib"] - before["rss_kib"] < 4096, out
