"""A program that profiles itself, run by `spprof run`: its start() joins `spprof run`'s profile.
argv[1]: the output_path of its own start(); argv[2] "late": its last stop() comes after
`spprof run --duration` ended the profile."""
import json
import sys
import time

import spprof


def own_work():
    return sum(range(2_000_000))


spprof.start(interval_ms=5, output_path=sys.argv[1])
own_work()
profile = spprof.stop()
spprof.start()
if sys.argv[2:] == ["late"]:
    while spprof.stats() is not None:  # until `spprof run --duration` has saved
        time.sleep(0.01)
again = spprof.stop()
print(json.dumps({"samples": len(profile.samples), "again": len(again.samples), "active": spprof.is_active()}),
      flush=True)
own_work()
