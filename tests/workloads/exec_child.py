"""A program that runs a child with close_fds=False while spprof samples in cpu mode with threads
that wake often (spprof then keeps their /proc files open): the child, which inherits every
descriptor not marked close-on-exec, lists what it got. None may be spprof's."""
import json
import subprocess
import sys
import threading
import time

import spprof
from busy import work

done = threading.Event()


def waker():
    while not done.is_set():
        work(0.002)
        time.sleep(0.001)


wakers = [threading.Thread(target=waker, daemon=True) for _ in range(8)]
for t in wakers:
    t.start()
spprof.start(interval_ms=1)
time.sleep(0.3)

listing = ("import json, os\n"
           "fds = {}\n"
           "for fd in os.listdir('/proc/self/fd'):\n"
           "    try: fds[fd] = os.readlink('/proc/self/fd/' + fd)\n"
           "    except OSError: pass\n"
           "print(json.dumps(fds))")
child = subprocess.run([sys.executable, "-c", listing], close_fds=False, capture_output=True, text=True, check=True)
profile = spprof.stop()
done.set()
for t in wakers:
    t.join()
inherited = json.loads(child.stdout)
spprofs = sorted(t for t in inherited.values() if t.startswith("anon_inode:") or t.startswith("/proc/"))
print(json.dumps({"inherited": spprofs, "samples": len(profile.samples)}))
