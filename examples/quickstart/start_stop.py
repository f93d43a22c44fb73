from _workload import expensive_computation

import spprof

# Start profiling with 10ms sampling interval
spprof.start(interval_ms=10)

# Run your workload
result = expensive_computation()

# Stop profiling and get results
profile = spprof.stop()

# Save to file (Speedscope format)
profile.save("profile.json")
