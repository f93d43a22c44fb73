"""More threads than the sampler's first buffers hold: N threads wait on an Event (started before
the profile, so they are the oldest in the interpreter's list, after the main thread only), while
the main thread runs a hot loop. Prints one JSON line.

usage: many_threads.py MODE N
"""
import json
import sys
import threading
import time

import spprof
from busy import work

mode, n = sys.argv[1], int(sys.argv[2])


def hot_main(seconds):
    return work(seconds, time.perf_counter)


threading.stack_size(256 * 1024)  # 4200 threads of the default 8 MiB are a lot of address space
release = threading.Event()
threads = [threading.Thread(target=release.wait, name=f"idle{i}") for i in range(n)]
for t in threads:
    t.start()
try:
    spprof.start(interval_ms=10, mode=mode)
    cpu = time.thread_time()
    hot_main(1.5)
    # a wall tick walks every stack and takes longer than the interval: at least three whole
    # ticks while main is in its hot loop (a tick's worth of samples is n + 1)
    deadline = time.monotonic() + 60
    while mode == "wall" and spprof.stats().collected_samples < 4 * (n + 1) and time.monotonic() < deadline:
        hot_main(0.2)
    cpu = time.thread_time() - cpu
    profile = spprof.stop()
finally:
    release.set()
    for t in threads:
        t.join()

hot = sum(s.weight_ns for s in profile.samples if any(f.function_name == "hot_main" for f in s.frames))
print(json.dumps({
    "hot_main_ns": hot,
    "main_cpu_ns": int(cpu * 1e9),
    "threads_sampled": len({s.thread_id for s in profile.samples}),
    "idle_threads_sampled": len({s.thread_id for s in profile.samples if s.thread_name.startswith("idle")}),
    "main_sampled": any(s.thread_id == threading.main_thread().ident for s in profile.samples),
    "counters": profile.counters,
}))
