"""Profiles that reach memory_limit_mb: the counters saved with each profile are taken after the
sampler ended and after the collector's last drain, so they add up exactly."""
import json
import threading
import time

import spprof

done = threading.Event()
threads = [threading.Thread(target=done.wait) for _ in range(40)]
for t in threads:
    t.start()
runs = []
for _ in range(5):
    spprof.start(interval_ms=1, mode="wall", memory_limit_mb=1)
    end = time.monotonic() + 8  # until the bound is reached, and a little after
    while time.monotonic() < end and spprof._native.stats()["dropped_memory_limit"] == 0:
        time.sleep(0.1)
    time.sleep(0.3)
    p = spprof.stop()
    c = p.counters
    runs.append({"collected": c["collected_samples"], "kept": len(p.samples),
                 "dropped_memory": c["dropped_memory_limit"], "dropped": c["dropped_samples"],
                 "dropped_count": p.dropped_count, "dropped_full": c["dropped_queue_full"]})
done.set()
for t in threads:
    t.join()
print(json.dumps({"runs": runs}))
