# The writable temp volume is /tmp in the quickstart; SPPROF_TMP stands in for it in the tests.
import os

from _workload import expensive_computation

import spprof

tmp = os.environ.get("SPPROF_TMP", "/tmp")

# Write to writable temp volume
spprof.start(interval_ms=10, output_path=f"{tmp}/profile.json")
expensive_computation()  # ... application runs ...
spprof.stop()  # Profile saved to /tmp/profile.json
