# The quickstart's troubleshooting snippets, in order.
import os
import signal

from _workload import expensive_computation

import spprof

# "Profiler already running": check status before starting
spprof.start()
if not spprof.is_active():
    spprof.start()
spprof.stop()

# Permission errors: use a writable path (SPPROF_TMP stands in for /tmp)
tmp = os.environ.get("SPPROF_TMP", "/tmp")
try:
    spprof.start(output_path="/proc/spprof-not-writable/profile.json")  # like /app on a read-only root
except OSError as e:
    print(f"refused before starting: {type(e).__name__}; active: {spprof.is_active()}")
spprof.start(output_path=f"{tmp}/profile.json")  # Not /app/profile.json
spprof.stop()

# Signal conflicts: an application that uses SIGPROF
ticks = []
signal.signal(signal.SIGPROF, lambda *_: ticks.append(1))
old_handler = signal.getsignal(signal.SIGPROF)

spprof.start()
expensive_computation()
spprof.stop()
kept = signal.getsignal(signal.SIGPROF) is old_handler  # spprof never touched it

# Restore handler
signal.signal(signal.SIGPROF, old_handler)
print(f"SIGPROF handler kept: {kept}")
