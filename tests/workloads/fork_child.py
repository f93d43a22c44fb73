"""Forks while profiling with busy threads; the child must start inactive and profile itself.

argv: the folder to write parent.json and child.json in. Prints one JSON line of what each saw.
"""
import json
import os
import sys
import threading
import time

import spprof

folder = sys.argv[1]
stop_threads = threading.Event()


def busy():
    while not stop_threads.is_set():
        sum(i * i for i in range(1000))


def child_work():
    total = 0
    for i in range(3_000_000):
        total += i
    return total


spprof.start(interval_ms=1, output_path=os.path.join(folder, "parent.json"))
threads = [threading.Thread(target=busy) for _ in range(2)]
for t in threads:
    t.start()
time.sleep(0.2)
fork_ns = time.monotonic_ns()
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    seen = {"active": spprof.is_active(), "stats": spprof.stats() is not None}
    try:
        spprof.stop()
        seen["stop"] = "no error"
    except RuntimeError as e:
        seen["stop"] = str(e)
    spprof.start(interval_ms=1, output_path=os.path.join(folder, "child.json"))
    child_work()
    profile = spprof.stop()
    seen["child_samples"] = len(profile.samples)
    seen["child_functions"] = sorted({s.frames[-1].function_name for s in profile.samples})
    os.write(w, json.dumps(seen).encode())
    os.close(w)
    sys.exit(0)  # a normal exit: atexit runs in the child and must not write the parent's file
os.close(w)
_, status = os.waitpid(pid, 0)
child = json.loads(os.read(r, 1 << 16).decode() or "{}")
parent_file_before_stop = os.path.exists(os.path.join(folder, "parent.json"))
time.sleep(0.3)
stop_threads.set()
for t in threads:
    t.join()
profile = spprof.stop()
after_fork = [s for s in profile.samples if s.timestamp_ns > fork_ns + 100_000_000]
print(json.dumps({
    "child": child,
    "child_status": os.waitstatus_to_exitcode(status),
    "parent_file_before_stop": parent_file_before_stop,
    "parent_samples_after_fork": len(after_fork),
    "parent_threads": len({s.thread_id for s in profile.samples}),
}))
