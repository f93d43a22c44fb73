"""How near 2 : 1 spprof puts two identical tiny functions called twice and once, per interpreter
and per placement of the threads on the CPUs.

    python3 bench/tiny_calls.py --python PY [PY ...] [--rounds N] [--seconds S]
                                [--placements free split same]

Runs tests/workloads/coroutines.py tiny (a loop calling tiny_a twice and tiny_b once, identical
bodies of ~0.5-0.7 us; the test_tiny_calls_are_shared_by_their_time workload) at 1 ms in cpu mode
under each interpreter given (a venv with spprof installed), runs of one round alternated between
the interpreters and placements. Placements (the workload's PLACEMENT):

- free: where the scheduler puts the threads (what most tests see);
- split: the program's thread on one CPU, spprof's sampler and collector on another, so every
  copy is taken while the thread runs on;
- same: all on one CPU, so the sampler runs only while the thread is off its CPU and every copy
  is of a stopped thread: the reference, with no call or return between the reads of one walk.

Prints, per interpreter and placement, tiny_a's time over tiny_b's (mean, min, max over the rounds)
and the share of the loop's own lines (samples whose innermost frame is the caller, `tiny`).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from statistics import mean

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _machine  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
WORKLOAD = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir,
                                         "tests", "workloads", "coroutines.py"))

def one_run(python, place, seconds):
    # from another folder: the checkout's spprof/ has no built module and must not shadow the installed one
    out = subprocess.run([python, WORKLOAD, "tiny", "1", "cpu", str(seconds), "800", place],
                         capture_output=True, text=True, check=True, cwd=tempfile.gettempdir()).stdout
    r = json.loads(out.strip().splitlines()[-1])
    return r["tiny_a_s"] / r["tiny_b_s"], 100 * r["tiny_loop_s"] / r["total_s"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", nargs="+", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--placements", nargs="+", default=["free", "split", "same"], choices=["free", "split", "same"])
    args = ap.parse_args()
    if len(os.sched_getaffinity(0)) < 2 and set(args.placements) != {"free"}:
        sys.exit("split and same placements need two CPUs")
    got = {(p, q): [] for p in args.python for q in args.placements}
    for _ in range(args.rounds):
        for q in args.placements:
            for p in args.python:
                got[p, q].append(one_run(p, q, args.seconds))
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "tiny_calls.json"), "w") as f:
        json.dump([{"python": p, "placement": q, "seconds": args.seconds, "runs": got[p, q]} for p, q in got], f)
    print(f"# {_machine.cpu_model()}, nproc={_machine.nproc()}, {args.rounds} rounds of {args.seconds:g} s at 1 ms, cpu mode")
    print("| interpreter | placement | tiny_a : tiny_b, mean (min, max) | the loop's own share |")
    print("|---|---|---|---|")
    for p in args.python:
        version = _machine.python_version(p)
        for q in args.placements:
            ratios = [r[0] for r in got[p, q]]
            loop = mean(r[1] for r in got[p, q])
            print(f"| {version} | {q} | {mean(ratios):.3f} ({min(ratios):.3f}, {max(ratios):.3f}) | {loop:.1f} % |")


if __name__ == "__main__":
    main()
