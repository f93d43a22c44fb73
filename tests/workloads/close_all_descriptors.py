"""A program that closes every descriptor above 2 while it is profiled, as daemonizing code does,
then opens files of its own (which take the freed numbers) and writes to them. stop() must
return, spprof must never write to, read from or close the program's files, and stats() must say
what happened. argv[3] "at_once": stop() right after the descriptors were closed, before spprof
could notice."""
import json
import os
import sys

import spprof
from busy import work

folder, mode, at_once = sys.argv[1], sys.argv[2], sys.argv[3:] == ["at_once"]

spprof.start(interval_ms=1, mode=mode)
work(0.2)
ticks_before = spprof._native.stats()["ticks"]
os.closerange(3, 1024)
# The program's own files take the numbers spprof's descriptors had.
paths = [os.path.join(folder, f"own{i}") for i in range(8)]
fds = [os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC) for p in paths]
r, w = os.pipe()
for fd in fds:
    os.write(fd, b"mine")
if not at_once:
    work(0.5)
profile = spprof.stop()
# still open, and holding exactly what the program wrote
intact = []
for fd, p in zip(fds, paths):
    os.lseek(fd, 0, os.SEEK_SET)
    intact.append(os.read(fd, 100) == b"mine" and os.path.getsize(p) == 4)
os.write(w, b"x")
pipe_ok = os.read(r, 10) == b"x"
counters = profile.counters
print(json.dumps({
    "intact": intact, "pipe_ok": pipe_ok,
    "samples": len(profile.samples),
    "lost": counters.get("descriptors_lost"), "restarts": counters.get("timer_restarts"),
    "ticks_before": ticks_before, "ticks_end": counters.get("ticks"),
    "sampling_stopped": counters.get("sampling_stopped"),
}))
