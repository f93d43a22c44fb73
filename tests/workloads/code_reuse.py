"""Thousands of functions made with exec under distinct names, each run once and freed, so new
code objects keep landing on the addresses of dead ones while the sampler runs."""
import gc
import json
import sys
import time

import spprof

COUNT = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
SOURCE = """
def {name}(deadline, clock):
    total = 0
    while clock() < deadline:
        total += 1
    return total
"""

runs = []
spprof.start(interval_ms=1)
for k in range(COUNT):
    name = f"made_{k}"
    namespace = {}
    exec(SOURCE.format(name=name), namespace)
    fn = namespace[name]
    t0 = time.monotonic_ns()
    fn(t0 + 3_000_000, time.monotonic_ns)
    runs.append((name, t0, time.monotonic_ns()))
    del fn, namespace
    gc.collect()
profile = spprof.stop()
# The sampler reads threads one after another: a sample's thread was read after the previous
# sample's time was taken and before its own was.
seen = []
before = 0
for s in sorted(profile.samples, key=lambda s: s.timestamp_ns):
    seen += [(before, s.timestamp_ns, f.function_name) for f in s.frames if f.function_name.startswith("made_")]
    before = s.timestamp_ns
print(json.dumps({"runs": runs, "seen": seen, "counters": profile.counters}))
