"""How long Profile.save() takes per output format on a real profile of a million samples.

Run from the repository root:

    .venv/bin/python bench/save_speed.py               # >= 1,000,000 samples, 3 saves per format
    .venv/bin/python bench/save_speed.py --workload steady
    .venv/bin/python bench/save_speed.py --samples 100000 --runs 1    # a quick look

Builds the profile first: wall mode at 1 ms over THREADS sleeping threads. With the default
workload, "varied", their stacks change every few milliseconds (a random path of calls up to 11
deep, three sleep lengths), so the exporters see thousands of distinct stacks and a stack change
every few samples: the hard case for the Chrome trace, which writes events at every change.
With "steady" each thread sleeps in one stack. Then saves the profile in every registered
format, several times each, and reports the median with min-max and the file size.
Prints a Markdown table and writes bench/results/save_speed_WORKLOAD.json. It asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import spprof  # noqa: E402
from spprof.formats import FORMATS  # noqa: E402

THREADS = 100
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "save_speed_{}.json")


def _left(n: int, rng: random.Random) -> None:
    _descend(n, rng)


def _right(n: int, rng: random.Random) -> None:
    _descend(n, rng)


def _descend(n: int, rng: random.Random) -> None:
    # A random path of left and right calls: up to 2**11 distinct stacks, three sleeps at the leaf
    if n:
        (_left if rng.random() < 0.5 else _right)(n - 1, rng)
    else:
        time.sleep(rng.choice((0.002, 0.005, 0.01)))


def _varied(seed: int, done: threading.Event) -> None:
    rng = random.Random(seed)
    while not done.is_set():
        _descend(rng.randint(0, 10), rng)


def _steady(seed: int, done: threading.Event) -> None:
    while not done.wait(1.0):
        pass


def build_profile(samples: int, workload: str = "varied") -> spprof.Profile:
    done = threading.Event()
    worker = _varied if workload == "varied" else _steady
    threads = [threading.Thread(target=worker, args=(i, done), name=f"worker-{i}") for i in range(THREADS)]
    for t in threads:
        t.start()
    spprof.start(interval_ms=1, mode="wall", memory_limit_mb=2000)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            time.sleep(0.5)
            s = spprof.stats()
            if s is not None and s.collected_samples >= samples:
                break
    finally:
        profile = spprof.stop()
        done.set()
        for t in threads:
            t.join()
    return profile


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workload", choices=("varied", "steady"), default="varied")
    args = ap.parse_args()

    t0 = time.perf_counter()
    profile = build_profile(args.samples, args.workload)
    built_s = time.perf_counter() - t0
    data = profile._data
    assert data is not None
    n = len(data)
    print(f"profile: {n} samples, {len(data.stacks())} stacks, {len(data.threads())} threads, "
          f"built in {built_s:.1f} s", file=sys.stderr)

    rows: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, module in FORMATS.items():
            path = os.path.join(tmp, "profile" + module.EXTENSIONS[0])
            times = []
            for _ in range(args.runs):
                t = time.perf_counter()
                profile.save(path, format=name)
                times.append(time.perf_counter() - t)
            rows.append({"format": name, "extension": module.EXTENSIONS[0], "median_s": statistics.median(times),
                         "min_s": min(times), "max_s": max(times), "bytes": os.path.getsize(path)})

    print(f"\n{args.workload} workload: {n} samples, {len(data.stacks())} stacks, {len(data.threads())} threads, "
          f"median of {args.runs} saves\n")
    print("| format | file | save time (min–max) | size |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['format']} | `{r['extension']}` | {r['median_s']:.2f} s ({r['min_s']:.2f}–{r['max_s']:.2f}) "
              f"| {r['bytes'] / 1e6:.1f} MB |")

    result = {
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
                    "load_average": os.getloadavg()},  # other work on the machine slows every save
        "command": " ".join([".venv/bin/python", "bench/save_speed.py", *sys.argv[1:]]),
        "workload": args.workload, "samples": n, "stacks": len(data.stacks()), "threads": len(data.threads()),
        "runs": args.runs, "rows": rows,
    }
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS.format(args.workload), "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
