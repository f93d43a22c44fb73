"""Ends the interpreter while spprof is still sampling, in the way argv[1] names; argv[2] is the
output_path, which spprof must write at exit wherever the interpreter ends normally."""
import os
import signal
import sys
import threading

import spprof


def work():
    total = 0
    for i in range(1_000_000):
        total += i
    return total


spprof.start(interval_ms=1, output_path=sys.argv[2])
t = threading.Thread(target=work)
t.start()
work()
t.join()
print("about to exit", flush=True)
mode = sys.argv[1]
if mode == "sys.exit":
    sys.exit(7)
if mode == "raise":
    raise RuntimeError("unhandled")
if mode == "os._exit":
    os._exit(5)
if mode == "sigterm":  # the default handler: the kernel ends the process, no Python code runs
    os.kill(os.getpid(), signal.SIGTERM)
    signal.pause()
# "return": the end of the script
