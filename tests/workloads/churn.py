"""start()/stop() many times over; prints the process's threads, descriptors and RSS before and
after, for the test to check they come back to the baseline. argv: cycles."""
import json
import os
import sys
import threading
import time

import spprof


def snapshot():
    with open("/proc/self/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    # A thread that stop() has joined can stay listed in /proc for a moment while the kernel
    # finishes its exit: the fewest of a few looks 10 ms apart (a leaked thread stays in all)
    threads = []
    for _ in range(5):
        threads.append(len(os.listdir("/proc/self/task")))
        time.sleep(0.01)
    return {"threads": min(threads), "fds": len(os.listdir("/proc/self/fd")), "rss_kib": rss}


cycles = int(sys.argv[1])
busy = threading.Event()
worker = threading.Thread(target=lambda: busy.wait(600))  # a second thread to be sampled
worker.start()
for _ in range(50):  # warm-up: the allocator's arenas and the first imports
    spprof.start(interval_ms=1)
    spprof.stop()
before = snapshot()
samples = 0
for i in range(cycles):
    spprof.start(interval_ms=1, mode="wall" if i % 2 else "cpu")
    if i % 50 == 0:  # most cycles are shorter than a tick; these collect samples
        end = time.monotonic() + 0.01
        while time.monotonic() < end:
            pass
    samples += len(spprof.stop()._data)
after = snapshot()
busy.set()
worker.join()
print(json.dumps({"before": before, "after": after, "samples": samples, "cycles": cycles}))
