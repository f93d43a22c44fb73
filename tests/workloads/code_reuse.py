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
seen = [(s.timestamp_ns, f.function_name) for s in profile.samples for f in s.frames
        if f.function_name.startswith("made_")]
print(json.dumps({"runs": runs, "seen": seen, "counters": profile.counters}))
