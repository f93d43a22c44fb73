"""The collector runs out of memory (an address-space limit reached while its tables grow, long
before memory_limit_mb): it drops and counts, never aborts; stop() returns the profile."""
import json
import os
import resource
import threading
import time

import spprof

stop_threads = threading.Event()


def idle():
    stop_threads.wait()


def busy(n):
    def f():
        total = 0
        while not stop_threads.is_set():
            for i in range(1000):
                total += i
    return f


threads = [threading.Thread(target=idle) for _ in range(200)]
for t in threads:
    t.start()


def vm_size():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024


spprof.start(interval_ms=1, mode="wall", memory_limit_mb=4096)
# spprof's threads and its queue are in; the collector's tables soon do not fit
limit = vm_size() + int(os.environ.get("SPPROF_TEST_AS_MB", "2")) * 1024 * 1024
resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
time.sleep(4)
resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
profile = spprof.stop()
stop_threads.set()
for t in threads:
    t.join()
print(json.dumps({"samples": len(profile.samples), "dropped_memory": profile.counters["dropped_memory_limit"]}))
