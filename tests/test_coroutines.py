"""Generators, coroutines and tiny calls: the profile's total matches the thread's own clocks and
no function is charged for another's time. Workloads in tests/workloads/coroutines.py."""
import sys

import pytest

from conftest import run_workload

def run(kind, interval_ms, mode, placement="free", seconds=None):
    # enough samples for the bounds. A share near 90 % of n samples varies by 30/sqrt(n) points from
    # run to run: 1.5 at 10 ms over 4 s (400), which with 3.9's and 3.10's +1 of bias left ±5 only
    # some 2.6 of those (a run at 95.7 against 90.7 on 3.10); 8 s brings it to 1.1, as 2 s at 1 ms
    # gives 0.7. tiny: the ratio of two shares of n samples, near 2/3 and 1/3 of them, varies by
    # 2 * sqrt(4.5 / n) from run to run: 0.053 at 8 s (measured 0.05-0.055), 0.034 at 20 s, so a
    # bound of 0.2 is 4 of those from the 1.93-1.95 some machines give (bench/RESULTS.md).
    seconds = seconds or (20.0 if kind == "tiny" else 8.0 if interval_ms >= 10 else 2.0)
    proc, out = run_workload("coroutines", kind, interval_ms, mode, seconds, 800, placement, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def disturbed(out):
    # The machine's own clocks say the run was starved: the thread, which never sleeps, got well
    # under the CPU it asked for; or the sampler was, and skipped ticks: a late tick carries the
    # CPU of several intervals to the one stack it finds, and a few such lumps swing a share by
    # points (the mean stays right, the spread does not).
    c = out["counters"]
    return out["cpu_s"] < 0.8 * out["wall_s"] or c["missed_ticks"] > 0.05 * max(c["ticks"], 1)


def accuracy_run(kind, interval_ms, mode, check, **how):
    """Up to three runs: a run on a disturbed machine says nothing of spprof. The bounds are the
    same whatever happened."""
    for attempt in range(3):
        out = run(kind, interval_ms, mode, **how)
        if not disturbed(out) or attempt == 2:
            break
    check(out)
    return out


@pytest.mark.parametrize("mode", ["cpu", "wall"])
@pytest.mark.parametrize("interval_ms", [1, 10])
@pytest.mark.parametrize("kind", ["tasks", "generators"])
def test_generator_and_coroutine_time_is_all_in_the_profile(kind, interval_ms, mode):
    def check(out):
        clock = out["cpu_s"] if mode == "cpu" else out["wall_s"]
        # the thread's own samples; in wall mode the suspended tasks have theirs besides
        assert abs(out["total_s"] / clock - 1) <= 0.05, out
        assert (out["waiting_s"] > 0) == (kind == "tasks" and mode == "wall"), out
        c = out["counters"]
        walks = c["collected_samples"]
        assert c["torn_walks"] <= 0.01 * walks, c
        assert c.get("torn_charged", 0) <= c["torn_walks"], c  # kept as <unknown>, so in total_s
        # A walk taken again after a torn one keeps what the torn copy agrees with, <unknown> for
        # the rest: kept whole, it charged the loop's short steps to the work the thread went on
        # to (3.11, 50 tasks at 1 ms: +3.5 points; bench/RESULTS.md). Most walks stay whole. The
        # share cut is the chance that a pipeline switches within a walk: 1.6-6 % on 3.11-3.13 at
        # 10 ms, 4.3-12.3 % on 3.14 (19 runs, bench/RESULTS.md), 10.6 % on 3.11 under ASan and UBSan.
        assert c["cut_after_tear"] <= 0.2 * walks, c
        if kind == "tasks":
            # A walk torn in one task and taken again in the next runs the same functions: kept
            # whole. Held frame by frame against the torn copy, the task's own coroutine frame was
            # `<unknown>` in 17-32 % of leaf_work's samples on 3.10.
            assert out["leaf_unknown_s"] <= 0.1 * out["leaf_s"], out
            # Each task's steps are named. The running task's record is read after the walk, and
            # at 15 us steps the loop had gone on to another task by then: on 3.14 18-32 % of
            # leaf_work's samples were named, 37-61 % on 3.11-3.13, 84-86 % on 3.9 and 3.10.
            assert out["leaf_named_s"] >= 0.85 * (out["leaf_s"] - out["leaf_unknown_s"]), out
            if mode == "wall":
                # From the start: wall mode's reads of the suspended tasks make each task known
                # by its coroutine before a walk meets it running (the first second's share was
                # 0.73-0.82 when only the running task's record taught them, 1.00 now).
                assert out["leaf_named_first_second_s"] >= 0.95 * out["leaf_first_second_s"], out
            if sys.version_info >= (3, 11):
                # A task's coroutine suspended by the time its frame was read on its own: the walk
                # goes on from the frame that resumed it, on 3.11 the current frame of the record
                # around it, read with the stack, on 3.12+ the frame its entry frame was called
                # from. Before, 23-35 % of leaf_work's samples ended at the task on 3.11 and
                # 9-36 % on 3.12-3.14; now 3-8 % on 3.11 (under ASan too). 3.12+ learn which
                # coroutines are entered from C from whole walks, one task a walk at most: once
                # each of the 50 has been met (the thread's first 400 samples), 0-1 %.
                if sys.version_info[:2] == (3, 11):
                    assert out["leaf_truncated_s"] <= 0.15 * out["leaf_s"], out
                else:
                    assert out["leaf_truncated_late_s"] <= 0.05 * out["leaf_late_s"], out
        leaf = 100 * out["leaf_s"] / out["total_s"]
        truth = 100 * out["leaf_measured_s"] / out["cpu_s"]
        assert abs(leaf - truth) <= 5, (leaf, truth, out)

    accuracy_run(kind, interval_ms, mode, check)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.9/3.10 read each frame object on its own (README, known limits)")
@pytest.mark.parametrize("interval_ms", [1, 10])
def test_a_pipelines_stacks_are_those_python_shows(interval_ms):
    # A generator's frame lies outside the thread's stack chunk. Read on its own after the chunk's
    # copy, it showed where the generator was by then: in one run on 3.11 at 10 ms, only 49 % of
    # leaf_work's samples had a stack Python shows there (the others: the outer stage on its own
    # line under the inner one, a stage that had suspended, one missing). A walk cut after a tear
    # says `<unknown>` for the frames it could not tell, which is no wrong stack: of the others,
    # those the profile gives whole, nine in ten must be a stack Python shows. (3.14 cuts 4-12 %
    # of a pipeline's walks at 10 ms, bench/RESULTS.md: against all of leaf_work's samples the
    # bound failed three runs in ten.)
    def check(out):
        assert out["leaf_true_stack_s"] >= 0.9 * (out["leaf_s"] - out["leaf_unknown_s"]), out

    accuracy_run("generators", interval_ms, "cpu", check)


def test_the_loops_step_into_a_task_keeps_its_samples():
    # Between two tasks the loop spends some 5 % of this thread's CPU in its own code, part of it
    # in Handle._run's C part of a task's step, which resumes the task's coroutine. A walk caught
    # there sees the thread go on into the task while it is copied; 3.13 and 3.14 tore each such
    # walk and took it again inside the task's work, and Handle._run kept none (fixed in f197ec5).
    # Measured since (with leaf_work timed in the run): 0.17-0.30 of the loop's share on 3.13 and
    # 3.14, 0.2-0.55 on the others; the bound leaves room for the 15 to 80 samples this is at 1 ms.
    def check(out):
        rest = 1 - out["leaf_measured_s"] / out["cpu_s"]  # the loop's and the tasks' own code
        step = out["step_s"] / out["total_s"]
        assert step >= 0.04 * rest, (step, rest, out)

    accuracy_run("tasks", 1, "cpu", check)


def test_tiny_calls_are_shared_by_their_time():
    # tiny_a is called twice for every call of tiny_b, and their bodies are the same. At 1 ms
    # only: at 10 ms, ±10 % on the ratio of two shares needs some 25 s of samples.
    def check(out):
        ratio = out["tiny_a_s"] / out["tiny_b_s"]
        assert abs(ratio - 2.0) <= 0.2, (ratio, out)

    accuracy_run("tiny", 1, "cpu", check)


def test_a_loop_of_tiny_calls_keeps_its_own_share():
    # The loop's own lines between its calls hold some 4-6 % of its time. A copy of the thread
    # stopped (all threads on one CPU: the sampler runs while the thread is off it) is the
    # reference; one taken while it runs on, on another CPU, must find about as much. Reading the
    # thread state just before the current frame moved that read against the thread's calls: the
    # loop got 18-24 % on 3.12 and 0.9-2.6 % on 3.11 against 3.5-3.9 % with the threads on one CPU.
    # A share near 4 % of 8000 samples varies by 0.2 points from run to run, the difference of two
    # by 0.3.
    def check(out):
        if out["cpus"] < 2:
            pytest.skip("needs two CPUs")

    ref = accuracy_run("tiny", 1, "cpu", check, placement="same", seconds=8.0)
    apart = accuracy_run("tiny", 1, "cpu", check, placement="split", seconds=8.0)
    share = [100 * o["tiny_loop_s"] / o["total_s"] for o in (ref, apart)]
    assert abs(share[1] - share[0]) <= 3, (share, ref, apart)


def test_greenlet_switches_keep_their_time():
    pytest.importorskip("greenlet")

    def check(out):
        assert abs(out["total_s"] / out["cpu_s"] - 1) <= 0.05, out
        c = out["counters"]
        assert c["torn_walks"] <= 0.01 * c["collected_samples"], c

    accuracy_run("greenlets", 1, "cpu", check)
