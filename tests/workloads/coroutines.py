"""Generator and coroutine frames under the sampler, against the thread's own clocks.

Usage: coroutines.py KIND INTERVAL_MS MODE SECONDS
KIND: tasks (one event loop of 50 tasks, ~15 us of leaf_work then `await asyncio.sleep(0)`),
generators (a next()-driven pipeline of generators, each item ~15 us of leaf_work), tiny (a loop
calling tiny_a twice and tiny_b once, identical bodies), greenlets (two greenlets switching after
each leaf_work). Prints one JSON line: the profile's total and leaf_work's weight in the main
thread, the weight of its samples in the loop's `Handle._run` (tasks), the thread's CPU and wall
time over the profile, leaf_work's measured time, the counters.

leaf_work's time is measured by difference: after the profile, the same number of steps runs
again with an empty leaf_work, and the thread's CPU of that run is what the rest cost. (A clock
read around every call would put a system call beside every call, and a thread is preempted
mostly where it makes system calls: a profile taken on a busy machine would find it there more
often than its CPU says. A cost per call measured in a loop of its own is some points cheaper
than in the workload, whose other code evicts its caches.)
"""
import asyncio
import json
import sys
import time

import spprof

KIND, INTERVAL, MODE, SECONDS = sys.argv[1], float(sys.argv[2]), sys.argv[3], float(sys.argv[4])
calls = [0]
budget = [None]  # steps left in the run without leaf_work's work; None: run until the deadline


def leaf_work():
    total = 0
    for i in range(800):
        total += i & 7
    return total


def no_work():
    return 0


work = [leaf_work]


def timed_leaf():
    calls[0] += 1
    work[0]()


def more(deadline):
    now = time.monotonic()  # read in both runs, so both pay for it
    if budget[0] is None:
        return now < deadline
    budget[0] -= 1
    return budget[0] >= 0


async def task(deadline):
    while more(deadline):
        timed_leaf()
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
    deadline = time.monotonic() + SECONDS
    spprof.start(interval_ms=INTERVAL, mode=MODE)
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    run(deadline)
    cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
    profile = spprof.stop()
    # the same steps again, without leaf_work's work
    steps, work[0] = calls[0], no_work
    budget[0] = steps // 2 if KIND in ("generators", "greenlets") else steps  # two calls a step
    cpu0 = time.thread_time()
    if KIND != "tiny":
        run(None)
    rest = time.thread_time() - cpu0
    ident = __import__("threading").get_ident()
    total = leaf = a = b = na = nb = waiting = step = 0
    for s in profile.samples:
        if s.thread_id != ident:
            continue
        if s.frames and s.frames[0].filename == "<asyncio task>":
            waiting += s.weight_ns  # 3.14, wall mode: a suspended task, beside the thread's own time
            continue
        total += s.weight_ns
        names = [f.function_name for f in s.frames]
        if "leaf_work" in names:
            leaf += s.weight_ns
        if names and names[-1] in ("Handle._run", "_run") and s.frames[-1].filename.endswith("events.py"):
            step += s.weight_ns  # the loop in the C part of a task's step (3.9, 3.10: no qualified names)
        if names and names[-1] == "tiny_a":
            a += s.weight_ns
            na += 1
        if names and names[-1] == "tiny_b":
            b += s.weight_ns
            nb += 1
    print(json.dumps({
        "total_s": total / 1e9, "waiting_s": waiting / 1e9, "leaf_s": leaf / 1e9, "cpu_s": cpu, "wall_s": wall,
        "leaf_measured_s": max(0.0, cpu - rest), "step_s": step / 1e9, "tiny_a_s": a / 1e9, "tiny_b_s": b / 1e9, "tiny_a_n": na, "tiny_b_n": nb,
        "counters": profile.counters,
    }))


main()
