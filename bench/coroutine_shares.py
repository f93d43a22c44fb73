"""How near its measured share spprof puts a coroutine's or generator's own work, per interpreter.

    python3 bench/coroutine_shares.py --python PY [PY ...] [--rounds N] [--kinds tasks generators]
                                      [--leaf-loops N]

Runs tests/workloads/coroutines.py (the accuracy tests' workload: 50 asyncio tasks, or a
next()-driven pipeline of generators, each step ~15 us of `leaf_work`, or ~4 us with
--leaf-loops 200) under each interpreter given
(a venv with spprof installed; two venvs of two commits compare builds), in cpu and wall mode at 1
and 10 ms, runs of one round alternated between the interpreters. Prints, per interpreter and
setting, `leaf_work`'s share of the profile less its share by the workload's own clocks (points;
mean and range over the rounds), and the walks taken again because the first copy was torn, per
100 samples (in wall mode the suspended tasks' samples count too): a retry lands later, where
the thread has moved on, so fewer of them is less bias; and the sampler's reads and CPU a tick.
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


def one_run(python, kind, interval_ms, mode, loops):
    seconds = "2" if interval_ms == 1 else "4"
    # from another folder: the checkout's spprof/ has no built module and must not shadow the installed one
    out = subprocess.run([python, WORKLOAD, kind, str(interval_ms), mode, seconds, str(loops)], capture_output=True,
                         text=True, check=True, cwd=tempfile.gettempdir()).stdout
    r = json.loads(out.strip().splitlines()[-1])
    c = r["counters"]
    first_torn = sum(v for k, v in c.items() if k.startswith("torn_") and k not in ("torn_walks", "torn_charged"))
    ticks = max(1, c["ticks"])
    return (100 * r["leaf_s"] / r["total_s"] - 100 * r["leaf_measured_s"] / r["cpu_s"],
            100 * first_torn / max(1, c["collected_samples"]), c["reads"] / ticks, c["sampler_cpu_ns"] / ticks / 1000)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", nargs="+", required=True)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--kinds", nargs="+", default=["tasks", "generators"])
    ap.add_argument("--leaf-loops", type=int, default=800,
                    help="leaf_work's loop count: 800 is the tests' ~15 us a step, 200 ~4 us")
    args = ap.parse_args()
    settings = [(k, i, m) for k in args.kinds for i in (1, 10) for m in ("cpu", "wall")]
    got = {(p, s): [] for p in args.python for s in settings}
    for _ in range(args.rounds):
        for s in settings:
            for p in args.python:
                got[p, s].append(one_run(p, *s, args.leaf_loops))
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "coroutine_shares.json"), "w") as f:
        json.dump([{"python": p, "kind": s[0], "interval_ms": s[1], "mode": s[2], "runs": got[p, s]} for p, s in got], f)
    print(f"# {_machine.cpu_model()}, nproc={_machine.nproc()}, {args.rounds} rounds, leaf_work loops {args.leaf_loops}")
    print("| interpreter | workload | interval | mode | leaf_work share less its measured share, mean (min, max) "
          "| torn at the first copy, per 100 samples | reads a tick | sampler CPU a tick |")
    print("|---|---|---|---|---|---|---|---|")
    for p in args.python:
        version = _machine.python_version(p)
        for kind, interval, mode in settings:
            runs = got[p, (kind, interval, mode)]
            diffs = [r[0] for r in runs]
            torn, reads, cost = (mean(r[i] for r in runs) for i in (1, 2, 3))
            print(f"| {version} `{p}` | {kind} | {interval} ms | {mode} | {mean(diffs):+.1f} ({min(diffs):+.1f}, "
                  f"{max(diffs):+.1f}) | {torn:.1f} | {reads:.1f} | {cost:.0f} µs |")


if __name__ == "__main__":
    main()
