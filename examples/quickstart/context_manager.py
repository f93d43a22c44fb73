from _workload import expensive_computation

import spprof

with spprof.Profiler(interval_ms=5) as p:
    result = expensive_computation()

# Profile automatically saved after block
p.profile.save("profile.json")
