"""Code that comes and goes under continuous profiling with a small memory bound: thousands of
functions made with exec(), each run about a millisecond, for at least `seconds` and until the
collector's tables started afresh once (at most 60 s). argv: output folder, seconds."""
import json
import sys
import time

import spprof
from spprof import _native

folder, seconds = sys.argv[1], float(sys.argv[2])
spprof.start_continuous("churn", output_dir=folder, window_s=1, interval_ms=1, memory_limit_mb=1, max_files=1000)
start = time.monotonic()
n = 0
while time.monotonic() < start + seconds or (
        _native.stats()["tables_started_afresh"] == 0 and time.monotonic() < start + 60):
    scope = {}
    exec(f"def churn_{n}_{'x' * 1000}(t):\n    while time.thread_time() < t:\n        pass\n", {"time": time}, scope)
    fn = next(iter(scope.values()))
    fn(time.thread_time() + 0.001)
    n += 1
native = _native.stats()
stats = spprof.stop_continuous()
print(json.dumps({"functions": n, "afresh": native["tables_started_afresh"], "stats": stats,
                  "dropped_memory": native["dropped_memory_limit"], "bytes_held": native["bytes_held"]}))
