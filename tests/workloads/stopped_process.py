"""Profiles in wall mode at 10 ms for 1.2 s while the test stops the whole process (SIGSTOP) for
a while; prints the tick times (the main thread's samples) and the counters as JSON."""
import json
import sys
import time

import spprof

spprof.start(interval_ms=10, mode="wall")
print("ready", flush=True)
end = time.monotonic() + 1.2
while time.monotonic() < end:
    time.sleep(0.001)
profile = spprof.stop()
ticks = [s.timestamp_ns for s in profile.samples if s.thread_name == "MainThread"]
json.dump({"ticks": ticks, "missed": profile.counters["missed_ticks"],
           "duration_s": (profile.end_time - profile.start_time).total_seconds()}, sys.stdout)
print()
