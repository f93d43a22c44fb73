"""Many threads, most of them waiting: the clocks of idle threads are left unread, and no CPU is
lost by it (cpu mode reads them all again when the process's clock shows CPU that no read
clock accounts for)."""
import hashlib
import threading
import time

import spprof

from conftest import spin, weight_by

IDLE = 30


def with_idle_threads(fn):
    """Runs fn with IDLE threads waiting on an Event, the profile at 10 ms around it."""
    release = threading.Event()
    idle = [threading.Thread(target=release.wait, name=f"idle{i}") for i in range(IDLE)]
    for t in idle:
        t.start()
    try:
        spprof.start(interval_ms=10)
        try:
            fn()
        finally:
            profile = spprof.stop()
    finally:
        release.set()
        for t in idle:
            t.join()
    return profile


def late_worker(work, cpu):
    """A thread that waits long enough to count as idle, then works, then waits again."""
    go = threading.Event()

    def run():
        go.wait()
        before = time.thread_time()
        work()
        cpu["work"] = time.thread_time() - before
        time.sleep(0.15)  # ticks that read its clock once more, after the work

    return late_thread(run, go.set)


def late_thread(target, release):
    """A body for with_idle_threads: runs target in a thread named "late", released 20 ticks on."""
    def body():
        w = threading.Thread(target=target, name="late")
        w.start()
        time.sleep(0.2)
        release()
        w.join()

    return body


def burst():
    end = time.thread_time() + 0.4
    while time.thread_time() < end:
        spin(20_000)


def late_thread_weight(profile):
    by_thread = weight_by(profile, lambda s: s.thread_name if s.thread_name == "late" else None)
    return by_thread.get("late", 0.0)


def test_idle_threads_clocks_are_left_unread_and_have_no_samples():
    profile = with_idle_threads(lambda: [spin() for _ in range(20)])
    assert profile.counters["clock_reads_skipped"] > 0, profile.counters
    # nothing ran unread: the process's clock must not make it read every clock (a busy thread's
    # clock runs ahead of the process's by up to a scheduler tick, which once did, 1 tick in 10)
    assert profile.counters["clock_full_reads"] <= 1, profile.counters
    idle_samples = [s for s in profile.samples if s.thread_name.startswith("idle")]
    # the first ticks may still see a thread finishing its start-up
    assert sum(s.weight_ns for s in idle_samples) < 0.02 * sum(s.weight_ns for s in profile.samples), idle_samples


def test_a_thread_that_wakes_after_a_long_wait_is_charged_all_its_cpu():
    cpu = {}
    profile = with_idle_threads(late_worker(burst, cpu))
    got = late_thread_weight(profile) / 1e9
    assert abs(got - cpu["work"]) <= 0.1 * cpu["work"], (got, cpu, profile.counters)
    in_burst = weight_by(profile, lambda s: "burst" if s.thread_name == "late" and
                         any(f.function_name == "burst" for f in s.frames) else None)
    assert in_burst.get("burst", 0) / 1e9 >= 0.9 * cpu["work"], (in_burst, cpu)


def parked_inner(go):
    go.wait()


def parked_outer(go):
    parked_inner(go)


def test_a_thread_whose_state_was_left_uncopied_is_walked_as_it_is_after_waking():
    # A quiet thread's state is not copied at every tick. Once it runs again, its stack must come
    # from its state as it is now: never the frames it was parked in.
    go = threading.Event()
    cpu = {}

    def run():
        parked_outer(go)
        cpu["woke_ns"] = time.monotonic_ns()
        before = time.thread_time()
        burst()
        cpu["work"] = time.thread_time() - before
        time.sleep(0.15)

    profile = with_idle_threads(late_thread(run, go.set))
    assert profile.counters["thread_states_left_stale"] > 0, profile.counters
    after = [s for s in profile.samples if s.thread_name == "late" and s.timestamp_ns >= cpu["woke_ns"]]
    parked = [s for s in after if any(f.function_name.startswith("parked_") for f in s.frames)]
    assert parked == [], parked[:3]
    in_burst = sum(s.weight_ns for s in after if any(f.function_name == "burst" for f in s.frames))
    assert in_burst / 1e9 >= 0.9 * cpu["work"], (in_burst, cpu, profile.counters)


def hashing_run():
    """A thread that waits and works in one frame, in C calls that release the GIL."""
    big = b"x" * (64 << 20)
    gate = threading.Lock()
    gate.acquire()
    cpu = {}

    def hasher():
        h = hashlib.sha256()
        gate.acquire()
        before = time.thread_time()
        for _ in range(10):
            h.update(big)  # HASH_LINE
        cpu["work"] = time.thread_time() - before
        time.sleep(0.15)

    return with_idle_threads(late_thread(hasher, gate.release)), cpu


def test_cpu_used_with_the_gil_released_in_one_frame_is_charged():
    # Neither the thread's frames nor the GIL show its work, only the process's clock does. A
    # tick that finds it holding the GIL as it wakes (a few microseconds, longer on a loaded
    # machine) reads its clock from then on, which also charges it: the run is taken again until
    # the process's clock had to show the work, and every run must charge it.
    for _ in range(4):
        profile, cpu = hashing_run()
        got = late_thread_weight(profile) / 1e9
        assert abs(got - cpu["work"]) <= 0.1 * cpu["work"], (got, cpu, profile.counters)
        if profile.counters["clock_full_reads"] > 0:
            break
    assert profile.counters["clock_full_reads"] > 0, profile.counters
    hash_line = next(i for i, line in enumerate(open(__file__), 1) if "# HASH_LINE" in line and "update" in line)
    on_line = weight_by(profile, lambda s: s.frames[-1].lineno if s.thread_name == "late" and
                        s.frames[-1].function_name.endswith("hasher") else None)
    assert on_line.get(hash_line, 0) / 1e9 >= 0.8 * cpu["work"], (on_line, hash_line, cpu)
