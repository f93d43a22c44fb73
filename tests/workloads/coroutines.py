"""Generator and coroutine frames under the sampler, against the thread's own clocks.

Usage: coroutines.py KIND INTERVAL_MS MODE SECONDS [LOOPS [PLACEMENT]]   (MODE: cpu, wall, or off)
KIND: tasks (one event loop of 50 tasks, ~15 us of leaf_work then `await asyncio.sleep(0)`),
generators (a next()-driven pipeline of generators, each item ~15 us of leaf_work), tiny (a loop
calling tiny_a twice and tiny_b once, identical bodies), greenlets (two greenlets switching after
each leaf_work). LOOPS, 800 unless given, sets leaf_work's length: 200 makes its ~15 us ~4 us.
PLACEMENT: free (where the scheduler puts the threads; the default), split (this thread on the
first CPU it may use, spprof's two threads on the second: every copy is taken while the thread
runs on) or same (all on the first: the sampler runs only while the thread is off its CPU, and
every copy is of a stopped thread, the reference).
Prints one JSON line: the profile's total and leaf_work's weight in the main thread, with the
part of it in samples that have `<unknown>` in them, that name an asyncio task (also: of those
without `<unknown>` in the profile's first second, all and named), and that begin
with `<truncated>` (also: after the thread's first 400 samples, all and those; generators: also the part whose stack is one Python itself shows there), the weight of its samples in the loop's `Handle._run` (tasks) and
with `<unknown>` in them, in tiny_a, tiny_b and the tiny loop's own lines (tiny), the thread's CPU
and wall time over the profile, leaf_work's measured time, the CPUs the process may use, the
counters.

leaf_work's time is measured in the run itself: each call is timed with time.perf_counter_ns(),
which the kernel's vDSO answers with no system call, so the clock reads neither move the thread
nor get it preempted. A window a preemption stretched (over 4 times the median; some 10-300 of
120 000 on this machine) counts as the median. (An earlier form ran the same steps again without
the work and took the difference; the loop's own code costs less there, as the work no longer
evicts what it uses between steps, which put 1-3 points of the loop's time into leaf_work:
bench/RESULTS.md, "the tests' measured share".)
"""
import asyncio
import json
import os
import sys
import threading
import time

import spprof

KIND, INTERVAL, MODE, SECONDS = sys.argv[1], float(sys.argv[2]), sys.argv[3], float(sys.argv[4])
LOOPS = int(sys.argv[5]) if len(sys.argv) > 5 else 800
PLACEMENT = sys.argv[6] if len(sys.argv) > 6 else "free"
CPUS = sorted(os.sched_getaffinity(0))
spans = []  # each leaf_work call's wall time, ns
clock = time.perf_counter_ns


def leaf_work():
    total = 0
    for i in range(LOOPS):
        total += i & 7
    return total


def timed_leaf():
    t = clock()
    leaf_work()
    spans.append(clock() - t)


def more(deadline):
    return time.monotonic() < deadline


async def task(deadline):
    # The coroutine calls leaf_work itself, as a handler calls its work: each task's frame is its
    # own, and a walk taken again in another task finds another caller (through timed_leaf, whose
    # frame 3.9 and 3.10 reuse for every call, all tasks had one).
    while more(deadline):
        t = clock()
        leaf_work()
        spans.append(clock() - t)
        await asyncio.sleep(0)


async def tasks(deadline):
    await asyncio.gather(*(task(deadline) for _ in range(50)))


def source():
    i = 0
    while True:
        yield i
        i += 1


def stage(items):
    for x in items:
        timed_leaf()
        yield x


def generators(deadline):
    pipeline = stage(stage(source()))
    while more(deadline):
        next(pipeline)


def tiny_a():
    total = 0
    for i in range(40):
        total += i
    return total


def tiny_b():
    total = 0
    for i in range(40):
        total += i
    return total


def tiny(deadline):
    while time.monotonic() < deadline:
        for _ in range(100):
            tiny_a()
            tiny_a()
            tiny_b()


def greenlets(deadline):
    import greenlet

    def body():
        while more(deadline):
            timed_leaf()
            other.switch()

    def other_body():
        while True:
            timed_leaf()
            main.switch()

    main = greenlet.greenlet(body)
    other = greenlet.greenlet(other_body)
    main.switch()


def run(deadline):
    if KIND == "tasks":
        asyncio.run(tasks(deadline))
    elif KIND == "generators":
        generators(deadline)
    elif KIND == "tiny":
        tiny(deadline)
    elif KIND == "greenlets":
        greenlets(deadline)


def main():
    start = time.monotonic()
    deadline = start + SECONDS
    if MODE != "off":
        spprof.start(interval_ms=INTERVAL, mode=MODE)
    if PLACEMENT != "free" and len(CPUS) >= 2:
        for t in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{t}/comm") as f:
                if f.read().startswith("spprof"):
                    os.sched_setaffinity(int(t), {CPUS[1] if PLACEMENT == "split" else CPUS[0]})
        os.sched_setaffinity(threading.get_native_id(), {CPUS[0]})
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    run(deadline)
    cpu, wall, end = time.thread_time() - cpu0, time.perf_counter() - wall0, time.monotonic()
    profile = spprof.stop() if MODE != "off" else None
    median = sorted(spans)[len(spans) // 2] if spans else 0
    stretched = sum(x > 4 * median for x in spans)
    leaf_measured = sum(x if x <= 4 * median else median for x in spans) / 1e9
    if MODE == "off":  # for another profiler's view of the same run (bench/leaf_truth.py)
        print(json.dumps({"cpu_s": cpu, "wall_s": wall, "leaf_measured_s": leaf_measured, "spans_stretched": stretched,
                          "start": start, "end": end, "tid": threading.get_native_id()}))
        return
    ident = threading.get_ident()
    # The two stacks Python itself shows in leaf_work in the pipeline: the outer stage's own call,
    # and the inner stage's under the outer resuming it (generators() runs next(pipeline)).
    first = stage.__code__.co_firstlineno
    own = [("stage", first + 2), ("timed_leaf", None), ("leaf_work", None)]
    true_stacks = (own, [("stage", first + 1)] + own)
    total = leaf = a = b = na = nb = waiting = step = leaf_true = leaf_unknown = leaf_named = leaf_cut = unknown = loop = 0
    early = early_named = 0  # leaf_work's weight in the profile's first second, and the part that names a task
    first_ns = min((s.timestamp_ns for s in profile.samples), default=0)
    # after the thread's first 400 samples: time for whole walks to have met each of 50 tasks
    times = sorted(s.timestamp_ns for s in profile.samples if s.thread_id == ident)
    learnt_ns = times[400] if len(times) > 400 else float("inf")
    later = later_cut = 0  # leaf_work's weight after those, and the part that begins with `<truncated>`
    for s in profile.samples:
        if s.thread_id != ident:
            continue
        if s.frames and s.frames[0].filename == "<asyncio task>":
            waiting += s.weight_ns  # 3.14, wall mode: a suspended task, beside the thread's own time
            continue
        total += s.weight_ns
        names = [f.function_name for f in s.frames]
        if "<unknown>" in names:
            unknown += s.weight_ns  # what a walk could not tell: alone, or inside the frames it could
        if "leaf_work" in names:
            leaf += s.weight_ns
            if "<unknown>" in names:
                leaf_unknown += s.weight_ns
            named = any(f.filename == "<asyncio task>" for f in s.frames)
            if named:
                leaf_named += s.weight_ns
            if s.timestamp_ns - first_ns < 1e9 and "<unknown>" not in names:
                early += s.weight_ns
                early_named += s.weight_ns if named else 0
            if names[0] == "<truncated>":
                leaf_cut += s.weight_ns
            if s.timestamp_ns > learnt_ns:
                later += s.weight_ns
                later_cut += s.weight_ns if names[0] == "<truncated>" else 0
            below = [(f.function_name, f.lineno) for f in s.frames[names.index("generators") + 1:]] if "generators" in names else []
            if any(len(below) == len(t) and all(n == m and (line is None or line == l) for (n, l), (m, line) in zip(below, t))
                   for t in true_stacks):
                leaf_true += s.weight_ns
        if names and names[-1] in ("Handle._run", "_run") and s.frames[-1].filename.endswith("events.py"):
            step += s.weight_ns  # the loop in the C part of a task's step (3.9, 3.10: no qualified names)
        if names and names[-1] == "tiny_a":
            a += s.weight_ns
            na += 1
        if names and names[-1] == "tiny_b":
            b += s.weight_ns
            nb += 1
        if names and names[-1] == "tiny":
            loop += s.weight_ns
    print(json.dumps({
        "total_s": total / 1e9, "waiting_s": waiting / 1e9, "leaf_s": leaf / 1e9, "leaf_true_stack_s": leaf_true / 1e9, "leaf_unknown_s": leaf_unknown / 1e9, "leaf_named_s": leaf_named / 1e9, "leaf_first_second_s": early / 1e9, "leaf_named_first_second_s": early_named / 1e9, "leaf_truncated_s": leaf_cut / 1e9, "leaf_late_s": later / 1e9, "leaf_truncated_late_s": later_cut / 1e9, "cpu_s": cpu, "wall_s": wall,
        "leaf_measured_s": leaf_measured, "spans_stretched": stretched, "step_s": step / 1e9, "unknown_s": unknown / 1e9, "tiny_a_s": a / 1e9, "tiny_b_s": b / 1e9, "tiny_a_n": na, "tiny_b_n": nb,
        "tiny_loop_s": loop / 1e9, "cpus": len(CPUS),
        "counters": profile.counters,
    }))


main()
