"""start() with argv[1] descriptors left below the soft limit (after every other one was
taken), in argv[2] mode: either it raises OSError (Asio cannot make its descriptors), or it
samples; the process never aborts, and stop() returns what was collected. While it samples,
threads that wake often (each one a file spprof could keep open) run, and the program counts the
descriptors it can still open."""
import json
import os
import resource
import sys
import threading
import time

import spprof

done = threading.Event()


def waker():
    while not done.is_set():
        total = 0
        for i in range(2000):
            total += i
        time.sleep(0.0005)


wakers = [threading.Thread(target=waker) for _ in range(40)]
for t in wakers:
    t.start()

spare, mode = int(sys.argv[1]), sys.argv[2]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), hard))


def open_all():
    """Opens /dev/null until no descriptor is left; the descriptors."""
    fds = []
    try:
        while True:
            fds.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        return fds


held = open_all()
for _ in range(min(spare, len(held))):
    os.close(held.pop())
out = {}
try:
    spprof.start(interval_ms=1, mode=mode)
except OSError as e:
    out["start_error"] = str(e)
else:
    total = 0
    for i in range(2_000_000):
        total += i
    time.sleep(0.3)
    opened = open_all()
    out["opened_while_profiled"] = len(opened)
    for fd in opened:
        os.close(fd)
    profile = spprof.stop()
    out["samples"] = len(profile.samples)
done.set()
for t in wakers:
    t.join()
for fd in held:
    os.close(fd)
print(json.dumps(out))
