"""How much of a loop that calls a 100 ns function each profiler puts in that function.

    .venv/bin/python bench/short_calls.py [--python PATH]

spprof reads a running thread without stopping it; py-spy (when installed; `pip install py-spy`,
needs ptrace, so root) stops the process for each sample, so its share is the consistent
reference. Prints the share of samples whose innermost frame is `tiny` for each.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

# the tests' tiny calls (tests/workloads/busy.py), so the bench measures what they assert on
BUSY = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tests", "workloads"))
WORKLOAD = f"""
import sys
sys.path.append({BUSY!r})
from busy import tiny_caller
"""

SPPROF = WORKLOAD + """
import json, spprof
spprof.start(interval_ms=1)
tiny_caller(10_000_000)
p = spprof.stop()
leaves = [s.frames[-1].function_name for s in p.samples]
print(json.dumps({"tiny": leaves.count("tiny"), "all": len(leaves), "torn": p.counters["torn_walks"]}))
"""


def spprof_share(python):
    # from another folder: the checkout's spprof/ has no built module and must not shadow the installed one
    out = subprocess.run([python, "-c", SPPROF], capture_output=True, text=True, check=True,
                         cwd=tempfile.gettempdir()).stdout
    r = json.loads(out.strip().splitlines()[-1])
    return r["tiny"] / r["all"], r["all"], r["torn"]


def pyspy_share(python):
    pyspy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(pyspy):
        return None
    with tempfile.TemporaryDirectory() as d:
        script, raw = os.path.join(d, "w.py"), os.path.join(d, "out.txt")
        with open(script, "w") as f:
            f.write(WORKLOAD + "\ntiny_caller(30_000_000)\n")
        subprocess.run([pyspy, "record", "-r", "500", "-f", "raw", "-o", raw, "--", python, script],
                       capture_output=True, check=True)
        tiny = total = 0
        for line in open(raw):
            stack, _, count = line.rstrip().rpartition(" ")
            total += int(count)
            if stack.rsplit(";", 1)[-1].startswith("tiny "):
                tiny += int(count)
        return tiny / total, total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--python", default=sys.executable)
    args = ap.parse_args()
    share, n, torn = spprof_share(args.python)
    print(f"spprof: {100 * share:.1f} % of {n} samples in tiny ({torn} torn walks)")
    ref = pyspy_share(args.python)
    print("py-spy: not installed" if ref is None else f"py-spy: {100 * ref[0]:.1f} % of {ref[1]} samples in tiny")


if __name__ == "__main__":
    main()
