"""A 70/30 CPU split in one thread under continuous profiling; prints the thread's own CPU time.
argv: seconds, then start_continuous's keyword arguments as JSON."""
import json
import sys
import threading
import time

import spprof


def hot_seventy(until):
    x = 0
    while time.thread_time() < until:
        x += 1
    return x


def cold_thirty(until):
    x = 0
    while time.thread_time() < until:
        x -= 1
    return x


def work(seconds, out):
    start = time.thread_time_ns()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        now = time.thread_time()
        # a 31 ms cycle: no multiple of the 10 ms interval, so that ticks do not alias with it
        hot_seventy(now + 0.0217)
        cold_thirty(now + 0.031)
    out["thread_cpu_ns"] = time.thread_time_ns() - start


seconds = float(sys.argv[1])
spprof.start_continuous(**json.loads(sys.argv[2]))
out = {}
t = threading.Thread(target=work, args=(seconds, out), name="worker")
t.start()
t.join()
out["stats"] = spprof.stop_continuous()
print(json.dumps(out))
