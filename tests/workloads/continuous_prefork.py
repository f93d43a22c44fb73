"""A pre-fork server in miniature: the master starts continuous profiling, forks N workers with
plain os.fork(); each works, then exits normally (its last window is flushed at exit).
argv: push URL, N. Prints {"master": pid, "workers": [pids], "statuses": [exit codes]}."""
import json
import os
import sys
import time

import spprof


def work(seconds):
    x = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        x += 1
    return x


url, n = sys.argv[1], int(sys.argv[2])
spprof.start_continuous("prefork", push_url=url, window_s=1)
work(0.5)
workers = []
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        work(1.5)
        sys.exit(0)  # a normal exit: atexit flushes the worker's last window
    workers.append(pid)
statuses = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) if hasattr(os, "waitstatus_to_exitcode")
            else os.waitpid(pid, 0)[1] >> 8 for pid in workers]
work(0.5)
spprof.stop_continuous()
print(json.dumps({"master": os.getpid(), "workers": workers, "statuses": statuses}))
