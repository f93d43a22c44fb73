"""Threads of known lifetimes profiled in wall mode while three busy processes share the one CPU
this process is held to, at a lower priority (nice 10), so the sampler's ticks come late. Prints
one JSON line: each thread's lifetime as it measured it, the span from before its start() to
after its join() (the thread state exists somewhere between the two, and the scheduler makes
them differ), its wall total, the gaps between the ticks around its start() and around its end
(from its last line to its join()), the longest gap between two ticks, the missed ticks."""
import json
import os
import subprocess
import sys
import threading
import time

import spprof

INTERVAL_MS = 5
cpu = min(os.sched_getaffinity(0))
os.sched_setaffinity(0, {cpu})  # the threads started from here on, the sampler's too
hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(3)]
lifetimes, ends = {}, {}


def live(name, seconds):
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        time.sleep(0.01)
    ends[name] = time.monotonic()
    lifetimes[name] = ends[name] - start


try:
    for h in hogs:
        os.sched_setaffinity(h.pid, {cpu})
    os.nice(10)  # the hogs were started before: they keep the default priority
    time.sleep(0.2)
    spprof.start(interval_ms=INTERVAL_MS, mode="wall")
    threads = []
    spans, bounds = {}, {}
    for i, seconds in enumerate((1.2, 1.6, 2.0)):
        t = threading.Thread(target=live, args=(f"life{i}", seconds), name=f"life{i}")
        spans[t.name] = time.monotonic()
        t.start()
        bounds[t.name] = [spans[t.name], time.monotonic()]
        threads.append(t)
        time.sleep(0.3)
    for t in threads:  # in the order they end
        t.join()
        spans[t.name] = time.monotonic() - spans[t.name]
        bounds[t.name] += [ends[t.name], time.monotonic()]
    profile = spprof.stop()
finally:
    for h in hogs:
        h.kill()
        h.wait()

ticks = sorted({s.timestamp_ns for s in profile.samples})


def gap_around(a_s, b_s):
    """The time between the last tick before `a_s` and the first after `b_s` (monotonic seconds)."""
    a, b = a_s * 1e9, b_s * 1e9
    before = max((t for t in ticks if t <= a), default=ticks[0])
    after = min((t for t in ticks if t >= b), default=ticks[-1])
    return max(after - before, 0) / 1e9


weights = {}
for s in profile.samples:
    weights[s.thread_name] = weights.get(s.thread_name, 0) + s.weight_ns
print(json.dumps({
    "interval_ms": INTERVAL_MS,
    "missed_ticks": profile.counters["missed_ticks"],
    "max_gap_ms": max(b - a for a, b in zip(ticks, ticks[1:])) / 1e6,
    "threads": {n: {"lifetime_s": lifetimes[n], "span_s": spans[n], "weight_s": weights.get(n, 0) / 1e9,
                    "start_gap_s": gap_around(*bounds[n][:2]), "end_gap_s": gap_around(*bounds[n][2:])}
                for n in lifetimes},
}))
