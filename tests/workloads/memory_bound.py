"""Profiles 60 sleeping threads in wall mode at 1 ms under memory_limit_mb=1: far more samples than
the bound holds. Prints what spprof held, dropped and kept, and the process's RSS growth."""
import json
import sys
import threading
import time

import spprof


def rss_kib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


done = threading.Event()
threads = [threading.Thread(target=done.wait) for _ in range(60)]
for t in threads:
    t.start()
limit_mb = float(sys.argv[1])
rss0 = rss_kib()
spprof.start(interval_ms=1, mode="wall", memory_limit_mb=limit_mb)
peak_held = 0
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    time.sleep(0.05)
    peak_held = max(peak_held, spprof.stats().bytes_held)
last = spprof.stats()
rss1 = rss_kib()
profile = spprof.stop()
done.set()
for t in threads:
    t.join()
print(json.dumps({
    "limit_bytes": int(limit_mb * 1024 * 1024), "peak_held": peak_held, "rss_growth_kib": rss1 - rss0,
    "stats_dropped": last.dropped_samples, "collected": last.collected_samples,
    "profile_dropped": profile.dropped_count, "kept": len(profile._data),
    "dropped_memory_limit": profile.counters.get("dropped_memory_limit", 0),
}))
