"""Saves a profile to argv[1] with a format writer that never finishes, for a kill -9 mid-save."""
import sys
import time

import spprof
from spprof import formats

spprof.start(interval_ms=1)
sum(range(1_000_000))
profile = spprof.stop()


def never_finishes(profile, path):
    with open(path, "w") as f:
        f.write("half a ")
    print("writing", flush=True)
    time.sleep(600)


formats.FORMATS["collapsed"].write = never_finishes
profile.save(sys.argv[1])
