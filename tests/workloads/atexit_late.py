"""Exit handlers registered before spprof is imported run after spprof's own. argv[1]: a folder.
One starts a profile with an output_path and leaves it running (it could never be saved: it must
be refused clearly); one profiles a block with Profiler (stopped by itself: it must work)."""
import atexit
import json
import os
import sys

folder = sys.argv[1]


def late_start():
    import spprof
    try:
        spprof.start(interval_ms=1, output_path=os.path.join(folder, "late.json"))
        print(json.dumps({"late_start": "started"}), flush=True)
    except RuntimeError as e:
        print(json.dumps({"late_start": str(e)}), flush=True)


def late_block():
    import spprof
    with spprof.Profiler(interval_ms=1, output_path=os.path.join(folder, "block.json")) as p:
        sum(range(300_000))
    print(json.dumps({"late_block": len(p.profile.samples) >= 0}), flush=True)


atexit.register(late_start)  # runs last
atexit.register(late_block)
import spprof  # noqa: E402,F401  (its exit handler runs before the two above)
