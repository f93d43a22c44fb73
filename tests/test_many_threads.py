"""More threads than the sampler's buffers first hold (1024): they grow, and no thread is left
out. The main thread is the oldest in the interpreter's list, where a cut list dropped it."""
import sys

import pytest

from conftest import run_workload

N = 4200


@pytest.mark.parametrize("mode", ["cpu", "wall"])
def test_every_thread_of_4200_is_sampled(mode):
    proc, result = run_workload("many_threads", mode, N, timeout=300)
    assert proc.returncode == 0 and result is not None, proc.stderr[-3000:]
    c = result["counters"]
    assert c["threads_seen"] >= N + 1
    assert c["thread_lists_cut"] == 0
    assert result["main_sampled"] and result["hot_main_ns"] > 0, result
    if mode == "cpu":  # the main thread's CPU, within a wide margin
        assert result["hot_main_ns"] >= 0.5 * result["main_cpu_ns"], result
    else:  # a tick of 4200 stacks takes longer than the interval: fewer ticks, but all threads
        assert result["idle_threads_sampled"] == N
