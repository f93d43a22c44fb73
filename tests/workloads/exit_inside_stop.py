"""The interpreter exits while daemon threads sit in spprof.stop() and Profile.save(), which run
without the GIL: taking it back at exit must end those threads quietly, never abort."""
import os
import sys
import threading
import time

import spprof

folder = sys.argv[1]
spprof.start(interval_ms=1)
total = 0
for i in range(300_000):
    total += i
profile = spprof.stop()


def cycle():
    while True:
        try:
            spprof.start(interval_ms=1)
            time.sleep(0.002)
            spprof.stop()
        except RuntimeError:  # the main thread's atexit handler stopped it
            pass


def save(n):
    path = os.path.join(folder, f"p{n}.json")
    while True:
        profile.save(path)


threading.Thread(target=cycle, daemon=True).start()
for n in range(3):
    threading.Thread(target=save, args=(n,), daemon=True).start()
time.sleep(0.3)
print("returning", flush=True)
