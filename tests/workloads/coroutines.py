"""Generator and coroutine frames under the sampler, against the thread's own clocks.

Usage: coroutines.py KIND INTERVAL_MS MODE SECONDS
KIND: tasks (one event loop of 50 tasks, ~15 us of leaf_work then `await asyncio.sleep(0)`),
generators (a next()-driven pipeline of generators, each item ~15 us of leaf_work), tiny (a loop
calling tiny_a twice and tiny_b once, identical bodies), greenlets (two greenlets switching after
each leaf_work). Prints one JSON line: the profile's total and leaf_work's weight in the main
thread, the thread's CPU and wall time over the profile, leaf_work's measured time, the counters.

leaf_work's time is its calls times its cost per call, measured with time.thread_time around
batches of calls before and after the profile: a clock read around every call would put a
system call beside every call, and a thread is preempted mostly where it makes system calls, so
a profile taken on a busy machine finds it there more often than its CPU time says.
"""
import asyncio
import json
import statistics
import sys
import time

import spprof

KIND, INTERVAL, MODE, SECONDS = sys.argv[1], float(sys.argv[2]), sys.argv[3], float(sys.argv[4])
calls = [0]


def leaf_work():
    total = 0
    for i in range(800):
        total += i & 7
    return total


def timed_leaf():
    calls[0] += 1
    leaf_work()


def costs_per_call():
    out = []
    for _ in range(5):
        t = time.thread_time()
        for _ in range(200):
            leaf_work()
        out.append((time.thread_time() - t) / 200)
    return out


async def task(deadline):
    while time.monotonic() < deadline:
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
    while time.monotonic() < deadline:
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
        while time.monotonic() < deadline:
            timed_leaf()
            other.switch()

    def other_body():
        while True:
            timed_leaf()
            main.switch()

    main = greenlet.greenlet(body)
    other = greenlet.greenlet(other_body)
    main.switch()


def main():
    costs = costs_per_call()
    deadline = time.monotonic() + SECONDS
    spprof.start(interval_ms=INTERVAL, mode=MODE)
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    if KIND == "tasks":
        asyncio.run(tasks(deadline))
    elif KIND == "generators":
        generators(deadline)
    elif KIND == "tiny":
        tiny(deadline)
    elif KIND == "greenlets":
        greenlets(deadline)
    cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
    profile = spprof.stop()
    after = costs_per_call()
    cost = statistics.median(costs + after)
    spread = abs(statistics.median(after) - statistics.median(costs)) / cost
    ident = __import__("threading").get_ident()
    total = leaf = a = b = na = nb = 0
    for s in profile.samples:
        if s.thread_id != ident:
            continue
        total += s.weight_ns
        names = [f.function_name for f in s.frames]
        if "leaf_work" in names:
            leaf += s.weight_ns
        if names and names[-1] == "tiny_a":
            a += s.weight_ns
            na += 1
        if names and names[-1] == "tiny_b":
            b += s.weight_ns
            nb += 1
    print(json.dumps({
        "total_s": total / 1e9, "leaf_s": leaf / 1e9, "cpu_s": cpu, "wall_s": wall,
        "leaf_measured_s": calls[0] * cost, "cost_spread": spread, "tiny_a_s": a / 1e9, "tiny_b_s": b / 1e9, "tiny_a_n": na, "tiny_b_n": nb,
        "counters": profile.counters,
    }))


main()
