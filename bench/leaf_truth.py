"""The accuracy tests' measured share of leaf_work, against the kernel's own sampler.

    python3 bench/leaf_truth.py --python PY [PY ...] [--rounds N] [--seconds S] [--frequency HZ]

Runs tests/workloads/coroutines.py with spprof off (MODE off) under `perf record -e cpu-clock`,
with CPython's perf trampolines (`-X perf`, 3.12+) so that perf names Python functions, and prints
per interpreter and workload the share of the thread's CPU that the workload measures for
leaf_work (each call timed with perf_counter_ns) beside the share of perf's samples taken in the
run whose innermost Python function is leaf_work. perf's samples are timer interrupts of the
thread itself: nothing is copied, so nothing tears. At a low frequency (499 Hz) they disturb the
run little. Needs `perf` (Debian's linux-perf) and kernel.perf_event_paranoid <= 2.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from statistics import mean

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _machine  # noqa: E402

WORKLOAD = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir,
                                         "tests", "workloads", "coroutines.py"))
HEAD = re.compile(r"^\s*(\d+)\s+(\d+\.\d+):")
PY = re.compile(r"\spy::([^:\s]+)")


def perf_share(data, tid, start, end):
    """leaf_work's share of the samples of thread tid between start and end (CLOCK_MONOTONIC),
    by each sample's innermost Python function; and the samples with none (unwinding stopped)."""
    script = subprocess.run(["perf", "script", "-i", data, "-F", "tid,time,ip,sym"],
                            capture_output=True, text=True, check=True).stdout
    leaf = named = unnamed = 0
    for block in script.split("\n\n"):
        lines = block.strip("\n").splitlines()
        m = HEAD.match(lines[0]) if lines else None
        if not m or int(m.group(1)) != tid or not start <= float(m.group(2)) <= end:
            continue
        inner = next((py.group(1) for line in lines[1:] if (py := PY.search(line))), None)
        if inner is None:
            unnamed += 1
            continue
        named += 1
        leaf += inner == "leaf_work"
    return 100 * leaf / max(1, named), named, unnamed


def one_run(python, kind, seconds, frequency):
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        proc = subprocess.Popen(["perf", "record", "-q", "-F", str(frequency), "-e", "cpu-clock", "-k", "CLOCK_MONOTONIC",
                                 "--call-graph", "dwarf,8192", "-o", data, "--", python, "-X", "perf", WORKLOAD, kind,
                                 "0", "off", str(seconds)], stdout=subprocess.PIPE, text=True, cwd=tmp)
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"perf record failed ({proc.returncode}): is perf installed, perf_event_paranoid <= 2?")
        r = json.loads(out.strip().splitlines()[-1])
        share, named, unnamed = perf_share(data, r["tid"], r["start"], r["end"])
    return 100 * r["leaf_measured_s"] / r["cpu_s"], share, named, unnamed


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", nargs="+", required=True, help="interpreters of 3.12 or newer")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--frequency", type=int, default=499)
    ap.add_argument("--kinds", nargs="+", default=["tasks", "generators"])
    args = ap.parse_args()
    got = {(p, k): [] for p in args.python for k in args.kinds}
    for _ in range(args.rounds):
        for k in args.kinds:
            for p in args.python:
                got[p, k].append(one_run(p, k, args.seconds, args.frequency))
    print(f"# {_machine.cpu_model()}, nproc={_machine.nproc()}, {args.rounds} rounds of {args.seconds:g} s, "
          f"perf at {args.frequency} Hz")
    print("| interpreter | workload | leaf_work by the workload's clocks, mean (min, max) | by perf's samples, mean (min, max) "
          "| perf samples a run (not named) |")
    print("|---|---|---|---|---|")
    for (p, k), runs in got.items():
        version = _machine.python_version(p)
        own, seen = [r[0] for r in runs], [r[1] for r in runs]
        print(f"| {version} | {k} | {mean(own):.1f} % ({min(own):.1f}, {max(own):.1f}) | {mean(seen):.1f} % "
              f"({min(seen):.1f}, {max(seen):.1f}) | {mean(r[2] for r in runs):.0f} ({mean(r[3] for r in runs):.0f}) |")


if __name__ == "__main__":
    main()
