"""A thread-churning service: WAVES waves of PER_WAVE threads started and joined in one profile
(each wave with another stack size, so that the threads' idents are new addresses), then a few
late threads that work. Prints one JSON line.

usage: thread_churn.py WAVES PER_WAVE
"""
import json
import sys
import threading
import time

import spprof
from busy import work

waves, per_wave = int(sys.argv[1]), int(sys.argv[2])
LATE = 8


def late_work(seconds=0.08):
    return work(seconds, time.thread_time)


spprof.start(interval_ms=10)
idents = set()
for wave in range(waves):
    threading.stack_size((256 + 64 * wave) * 1024)
    release = threading.Event()
    threads = [threading.Thread(target=release.wait) for _ in range(per_wave)]
    for t in threads:
        t.start()
    time.sleep(0.05)  # a few ticks with the whole wave alive
    release.set()
    for t in threads:
        idents.add(t.ident)
        t.join()
threading.stack_size((256 + 64 * waves) * 1024)
late = [threading.Thread(target=late_work, name=f"late{i}") for i in range(LATE)]
for i in range(0, LATE, 2):  # two at a time: each gets a core
    late[i].start()
    late[i + 1].start()
    late[i].join()
    late[i + 1].join()
profile = spprof.stop()

late_sampled = {s.thread_name for s in profile.samples if any(f.function_name == "late_work" for f in s.frames)}
print(json.dumps({
    "threads": waves * per_wave + LATE,
    "distinct_idents": len(idents),
    "late_threads_sampled": len(late_sampled),
    "unidentified_threads": profile.counters.get("unidentified_threads"),
    "native_ids_not_stored": profile.counters.get("native_ids_not_stored"),
    "ticks": profile.counters.get("ticks"),
}))
