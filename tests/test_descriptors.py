"""spprof's descriptors: few, bounded, given up under pressure, kept out of children, and never
used once the program has closed them (their numbers may then be the program's own files)."""
import os
import platform

import pytest

from conftest import run_workload


@pytest.mark.parametrize("spare", [0, 1, 2, 3])
def test_start_with_too_few_descriptors_raises_oserror_and_never_aborts(spare):
    proc, out = run_workload("few_descriptors", spare, "cpu", timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "descriptors" in out["start_error"] or "Too many open files" in out["start_error"]


@pytest.mark.parametrize("spare", [4, 24, 200])
def test_descriptors_held_while_profiling_are_few_and_bounded(spare):
    # 40 threads that wake often: each is a /proc file spprof could keep open. spprof keeps its
    # timer's 3 and at most 16 of those, none near the limit; one may be open for a moment.
    proc, out = run_workload("few_descriptors", spare, "cpu", timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out["samples"] > 0
    kept = 3 if spare < 80 else 3 + 16
    assert out["opened_while_profiled"] >= spare - kept - 1


@pytest.mark.parametrize("mode", ["cpu", "wall"])
def test_program_that_closes_every_descriptor_keeps_its_files_and_stop_returns(tmp_path, mode):
    proc, out = run_workload("close_all_descriptors", tmp_path, mode, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out["intact"] == [True] * 8 and out["pipe_ok"]
    assert out["lost"] == 1
    # sampling recovered with a fresh timer and went on after the descriptors were closed
    assert out["restarts"] == 1 and out["sampling_stopped"] == 0
    assert out["ticks_end"] > out["ticks_before"] + 50


def test_stop_right_after_every_descriptor_was_closed_returns(tmp_path):
    proc, out = run_workload("close_all_descriptors", tmp_path, "cpu", "at_once", timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out["intact"] == [True] * 8 and out["pipe_ok"]
    assert out["lost"] == 1 and out["samples"] > 0


def test_fork_through_libc_abandons_the_engine_and_closes_its_descriptors():
    proc, out = run_workload("c_fork", timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    child = out["child"]
    assert out["status"] == 0
    assert child["active"] is False
    assert child["native_stop"] == "Profiler not running"
    assert child["descriptors"] == []
    assert "child_error" not in child, child
    # GCC 12's ASan runtime has no fork interceptor: its allocator locks are not taken around
    # fork(), so the child's new sampler thread may block for good on one that a parent thread
    # held (seen once in CI: no samples, nothing else wrong). Every unsanitized run checks it.
    if not os.environ.get("SPPROF_SANITIZED"):
        assert child["child_samples"] > 0, child
    assert out["parent_samples"] > 0


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the seccomp filter names x86_64 system calls")
def test_start_where_seccomp_refuses_epoll_raises_oserror():
    proc, out = run_workload("no_epoll", timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "epoll" in out["start_error"] and out["active"] is False


def test_a_child_started_while_profiling_inherits_none_of_spprofs_descriptors():
    # close_fds=False: the child gets every descriptor not marked close-on-exec
    proc, out = run_workload("exec_child", timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out["samples"] > 0
    assert out["inherited"] == [], out
