"""Ends the interpreter while spprof is still sampling, in the way argv[1] names."""
import os
import sys
import threading

import spprof


def work():
    total = 0
    for i in range(1_000_000):
        total += i
    return total


spprof.start(interval_ms=1)
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
# "return": the end of the script
