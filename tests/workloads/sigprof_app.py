"""An application that owns SIGPROF with ITIMER_PROF at 5 ms; counts its signals per CPU second."""
import json
import signal
import sys
import time

profiled = sys.argv[1] == "profiled"
count = 0


def handler(signum, frame):
    global count
    count += 1


def work():
    total = 0
    for i in range(12_000_000):
        total += i % 7
    return total


signal.signal(signal.SIGPROF, handler)
signal.setitimer(signal.ITIMER_PROF, 0.005, 0.005)
if profiled:
    import spprof
    spprof.start(interval_ms=1)
cpu0 = time.process_time()
work()
cpu = time.process_time() - cpu0
result = {"signals": count, "cpu_s": cpu}
if profiled:
    profile = spprof.stop()
    result["work_samples"] = sum(1 for s in profile.samples if any(f.function_name == "work" for f in s.frames))
signal.setitimer(signal.ITIMER_PROF, 0, 0)
result["handler_kept"] = signal.getsignal(signal.SIGPROF) is handler
print(json.dumps(result))
