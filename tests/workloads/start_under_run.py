"""A program that profiles itself, run by `spprof run`: its start() joins `spprof run`'s profile."""
import json
import sys

import spprof


def own_work():
    return sum(range(2_000_000))


spprof.start(interval_ms=5, output_path=sys.argv[1] if len(sys.argv) > 1 else None)
own_work()
profile = spprof.stop()
spprof.start()
again = spprof.stop()
print(json.dumps({"samples": len(profile.samples), "again": len(again.samples), "active": spprof.is_active()}),
      flush=True)
own_work()
