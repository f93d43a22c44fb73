"""The workloads of bench/compare.py, one script run under every profiler.

    python bench/compare_workloads.py NAME SECONDS CALIBRATION_JSON
    python bench/compare_workloads.py --calibrate

NAME is one of WORKLOADS; SECONDS the unprofiled run time aimed at; CALIBRATION_JSON the
output of --calibrate (loop and sort speeds of this machine), so the same fixed amount of work
is done under every profiler. Only the standard library is used, and nothing here knows about
any profiler. When COMPARE_TRUTH is set, the script writes what it measured of itself there
as JSON (the time each part took, its own CPU at exit): the truth the profilers are held to.

Function names matter: compare.py finds them in each profiler's output.
"""
from __future__ import annotations

import atexit
import json
import os
import queue
import resource
import sys
import threading
import time

WORKLOADS = {
    "a": "1 thread, 70/30 split",
    "b": "4 threads, 1x-4x work",
    "c": "many tiny calls",
    "d": "deep recursion (200 frames)",
    "e": "long builtin holding the GIL",
    "f": "half CPU, half sleep",
    "g": "100 threads, 5 busy",
    "h": "paced by the clock at 1 ms, half in each of two functions",
}

TRUTH: dict = {}


# The calibrated loop. Each CPU leaf below repeats it inline on lines of its own rather than
# calling it (or tests/workloads/busy.py): the self-time reports (scalene's, attributed by source
# line, and pstats') credit a named function only when it is the leaf.
def _loop(n: int) -> int:
    x = 0
    for i in range(n):
        x = (x + i * i) % 1000003
    return x


# ------------------------------------------------------------------ (a) 70/30
# seventy and thirty run the same loop inline (not through a helper), so each is the leaf.

def seventy(n: int) -> int:
    x = 0
    for i in range(n):
        x = (x + i * i) % 1000003
    return x


def thirty(n: int) -> int:
    x = 0
    for i in range(n):
        x = (x + i * i) % 1000003
    return x


def work_a(seconds: float, cal: dict) -> None:
    rounds = 40
    chunk = int(seconds * cal["ips"] / rounds / 10)
    cpu = {"seventy": 0.0, "thirty": 0.0}
    wall = dict(cpu)
    for _ in range(rounds):
        for fn, n in ((seventy, 7 * chunk), (thirty, 3 * chunk)):
            c, w = time.thread_time(), time.perf_counter()
            fn(n)
            cpu[fn.__name__] += time.thread_time() - c
            wall[fn.__name__] += time.perf_counter() - w
    TRUTH["cpu_s"], TRUTH["wall_s"] = cpu, wall


# --------------------------------------------------------- (b) 4 threads 1x-4x
# One function per thread, each running its loop inline, so a thread's samples are found by
# name in any profiler's output, as the leaf (for those that report self time) or on the stack.

def worker1(n: int) -> int:
    x = 0
    for i in range(n):
        x = (x + i * i) % 1000003
    return x


def worker2(n: int) -> int:
    x = 0
    for i in range(n):
        x = (x + i * i) % 1000003
    return x


def worker3(n: int) -> int:
    x = 0
    for i in range(n):
        x = (x + i * i) % 1000003
    return x


def worker4(n: int) -> int:
    x = 0
    for i in range(n):
        x = (x + i * i) % 1000003
    return x


def work_b(seconds: float, cal: dict) -> None:
    unit = int(seconds * cal["ips"] / 10)
    cpu, wall = {}, {}

    def run(k: int, fn) -> None:
        c, w = time.thread_time(), time.perf_counter()
        fn(k * unit)
        cpu[fn.__name__] = time.thread_time() - c
        wall[fn.__name__] = time.perf_counter() - w  # its lifetime, GIL waits included

    threads = [threading.Thread(target=run, args=(k, fn), name=f"worker{k}")
               for k, fn in ((1, worker1), (2, worker2), (3, worker3), (4, worker4))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    TRUTH["cpu_s"], TRUTH["wall_s"] = cpu, wall


# ------------------------------------------------------------ (c) tiny calls

def tiny(x: int) -> int:
    return x + 1


def many_calls(n: int) -> int:
    s = 0
    for i in range(n):
        s += tiny(i)
    return s


def work_c(seconds: float, cal: dict) -> None:
    many_calls(int(seconds * cal["calls_per_s"]))


# ------------------------------------------------------- (d) deep recursion

DEPTH = 200


def bottom(n: int) -> int:
    x = 0
    for i in range(n):
        x = (x + i * i) % 1000003
    return x


def recurse(depth: int, n: int) -> int:
    if depth <= 1:
        return bottom(n)
    return recurse(depth - 1, n)


def work_d(seconds: float, cal: dict) -> None:
    rounds = 100
    chunk = int(seconds * cal["ips"] / rounds)
    for _ in range(rounds):
        recurse(DEPTH, chunk)


# ------------------------------------------------- (e) a builtin holding the GIL
# sorted() of a list of ints runs in C without releasing the GIL and without calling
# back into Python; half the work is sorts of ~0.25 s each, half a Python loop.

def in_builtin(data: list) -> int:
    return len(sorted(data))


def in_python(n: int) -> int:
    x = 0
    for i in range(n):
        x = (x + i * i) % 1000003
    return x


def work_e(seconds: float, cal: dict) -> None:
    data = list(map(hash, map(str, range(cal["sort_n"]))))  # C-level build, not timed as either part
    sorts = max(1, round(seconds / 2 / cal["sort_s"]))
    chunk = int(seconds / 2 * cal["ips"] / sorts)
    cpu = {"in_builtin": 0.0, "in_python": 0.0}
    wall = dict(cpu)
    for _ in range(sorts):
        for fn, arg in ((in_builtin, data), (in_python, chunk)):
            c, w = time.thread_time(), time.perf_counter()
            fn(arg)
            cpu[fn.__name__] += time.thread_time() - c
            wall[fn.__name__] += time.perf_counter() - w
    TRUTH["cpu_s"], TRUTH["wall_s"] = cpu, wall


# ------------------------------------------------------ (f) half CPU, half sleep

def cpu_part(n: int) -> int:
    x = 0
    for i in range(n):
        x = (x + i * i) % 1000003
    return x


def sleep_part(s: float) -> None:
    time.sleep(s)


def work_f(seconds: float, cal: dict) -> None:
    rounds = 20
    chunk_s = seconds / 2 / rounds
    n = int(chunk_s * cal["ips"])
    tc = ts = 0.0
    for _ in range(rounds):
        t = time.perf_counter()
        cpu_part(n)
        tc += time.perf_counter() - t
        t = time.perf_counter()
        sleep_part(chunk_s)
        ts += time.perf_counter() - t
    TRUTH["wall_s"] = {"cpu_part": tc, "sleep_part": ts}


# ---------------------------------------------------- (g) 100 threads, 5 busy

def idle_waiter(q: queue.Queue) -> None:
    while q.get() is not None:  # a server thread waiting for requests; None closes it
        pass


def cpu_worker(n: int) -> int:
    x = 0
    for i in range(n):
        x = (x + i * i) % 1000003
    return x


def work_g(seconds: float, cal: dict) -> None:
    q: queue.Queue = queue.Queue()
    idle = [threading.Thread(target=idle_waiter, args=(q,), name=f"idle{i}", daemon=True) for i in range(95)]
    for t in idle:
        t.start()
    n = int(seconds * cal["ips"] / 5)
    busy = [threading.Thread(target=cpu_worker, args=(n,), name=f"busy{i}") for i in range(5)]
    for t in busy:
        t.start()
    for t in busy:
        t.join()
    for _ in idle:
        q.put(None)
    for t in idle:
        t.join()


# ------------------------------------------- (h) paced by the clock at 1 ms
# Work that repeats every millisecond by the clock (a control loop, a tick handler): a sampler on
# a fixed grid of a whole number of milliseconds sees the same phase at every sample.

def first_half(until: float) -> None:
    while time.perf_counter() < until:
        pass


def second_half(until: float) -> None:
    while time.perf_counter() < until:
        pass


def work_h(seconds: float, cal: dict) -> None:
    period = 0.001
    tick = time.perf_counter()
    end = tick + seconds
    while tick < end:
        first_half(tick + period / 2)
        second_half(tick + period)
        tick += period


# ----------------------------------------------------------------- calibration

def calibrate() -> dict:
    def best(fn, arg, reps=3):
        out = []
        for _ in range(reps):  # CPU time, so another busy process on the machine does not shrink the work
            t = time.process_time()
            fn(arg)
            out.append(time.process_time() - t)
        return min(out)

    n, took = 100_000, 0.0
    while took < 0.1:  # past the 3.11 specialization warm-up
        n *= 2
        took = best(_loop, n, 1)
    ips = n / best(_loop, n)
    calls = int(ips / 4)
    calls_per_s = calls / best(many_calls, calls)
    sort_n = 1_000_000
    data = list(map(hash, map(str, range(sort_n))))
    sort_s = best(sorted, data)
    # ~0.25 s per sort, so each is one long call that holds the GIL
    sort_n = int(sort_n * 0.25 / sort_s)
    data = list(map(hash, map(str, range(sort_n))))
    sort_s = best(sorted, data)
    return {"ips": ips, "calls_per_s": calls_per_s, "sort_n": sort_n, "sort_s": sort_s,
            "python": sys.version.split()[0]}


def _write_truth(path: str, t0: float) -> None:
    # Registered first, so it runs last among atexit hooks: this process's own CPU,
    # apart from whatever a profiler does at exit in another process.
    ru = resource.getrusage(resource.RUSAGE_SELF)
    TRUTH["self_cpu_s"] = ru.ru_utime + ru.ru_stime
    TRUTH["self_wall_s"] = time.perf_counter() - t0
    with open(path, "w") as f:
        json.dump(TRUTH, f)


def main(argv: list) -> None:
    if argv[:1] == ["--calibrate"]:
        print(json.dumps(calibrate()))
        return
    name, seconds, cal = argv[0], float(argv[1]), json.loads(argv[2])
    truth_path = os.environ.get("COMPARE_TRUTH")
    t0 = time.perf_counter()
    if truth_path:
        atexit.register(_write_truth, truth_path, t0)
    w, c = time.perf_counter(), time.process_time()
    globals()["work_" + name](seconds, cal)
    TRUTH["work_wall_s"] = time.perf_counter() - w
    TRUTH["work_cpu_s"] = time.process_time() - c


if __name__ == "__main__":
    main(sys.argv[1:])
