"""A program that profiles itself, run by `spprof run`: its start() joins `spprof run`'s profile.
argv[1]: the output_path of its own start(); argv[2] "late": its last stop() comes after
`spprof run --duration` ended the profile."""
import json
import sys

import spprof


def own_work():
    return sum(range(2_000_000))


spprof.start(interval_ms=5, output_path=sys.argv[1])
own_work()
profile = spprof.stop()
spprof.start()
if sys.argv[2:] == ["late"]:
    # Working until `spprof run --duration` has saved: its profile holds own_work however late a
    # busy machine let the program reach this line.
    while spprof.stats() is not None:
        own_work()
again = spprof.stop()
print(json.dumps({"samples": len(profile.samples), "again": len(again.samples), "active": spprof.is_active()}),
      flush=True)
own_work()
