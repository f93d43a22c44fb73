"""Changes folder halfway through its run. argv: "api" (its own spprof.start(output_path=argv[2]),
relative) or "plain" (to be run by `spprof run`)."""
import os
import sys
import time


def burn(seconds=0.1):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


if sys.argv[1] == "api":
    import spprof
    spprof.start(interval_ms=1, output_path=sys.argv[2])
os.mkdir("elsewhere")
os.chdir("elsewhere")
burn()
if sys.argv[1] == "api":
    spprof.stop()
