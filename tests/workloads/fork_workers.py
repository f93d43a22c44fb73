"""The pre-fork worker pattern: a parent with a running thread forks workers, and each worker
profiles itself to its own file. argv: the folder; argv[2] "profiled" if the parent profiles too."""
import json
import os
import sys
import threading

import spprof

folder = sys.argv[1]
if len(sys.argv) > 2 and sys.argv[2] == "profiled":
    spprof.start(interval_ms=1)
ticker = threading.Event()
threading.Thread(target=lambda: ticker.wait(30), daemon=True).start()


def worker_loop(n):
    total = 0
    for i in range(n):
        total += i % 7
    return total


pids = []
for k in range(3):
    pid = os.fork()
    if pid == 0:
        spprof.start(interval_ms=1, output_path=os.path.join(folder, f"worker-{os.getpid()}.json"))
        worker_loop(2_000_000)
        spprof.stop()
        os._exit(0)
    pids.append(pid)
codes = [os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids]
parent_active = spprof.is_active()
if parent_active:
    spprof.stop()
ticker.set()
print(json.dumps({"pids": pids, "codes": codes, "parent_active": parent_active}))
