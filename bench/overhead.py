"""Overhead benchmark for spprof: what profiling costs a busy Python program.

Run from the repository root:

    .venv/bin/python bench/overhead.py            # 7 rounds of ~1 s of work per run
    .venv/bin/python bench/overhead.py --quick    # 3 rounds of ~0.5 s, for CI smoke use

Every measurement runs in a fresh subprocess (this file with --child SPEC, which
prints one JSON line). Each round runs every workload x config once, in a seeded
shuffled order, and overheads are ratios to the same round's no-profiler baseline,
reported as the median across rounds with min-max. It asserts nothing.
Prints a Markdown table and writes bench/results/overhead.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import statistics
import subprocess
import sys
import time

from _machine import cpu_model, nproc

WORKLOADS = (1, 4)  # busy threads
CONFIGS = (  # (mode, interval_ms); mode None is the baseline
    (None, None),
    ("cpu", 1),
    ("cpu", 10),
    ("cpu", 100),
    ("wall", 10),
)
STACK_DEPTH = 20  # so each sample walks a realistic stack, not two frames
LATENCY_REPEATS = 30
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "overhead.json")


# ---------------------------------------------------------------- child side

def _busy(iters: int, depth: int = STACK_DEPTH) -> int:
    if depth:
        return _busy(iters, depth - 1)
    x = 0
    for i in range(iters):
        x = (x + i * i) % 1000003
    return x


def _child_calibrate(spec: dict) -> dict:
    # Grow n past the warm-up (3.11+ specializes the loop), then keep the best of three:
    # the least disturbed timing is the closest to the real speed.
    n, took = 100_000, 0.0
    while took < 0.1:
        n *= 2
        t = time.perf_counter()
        _busy(n)
        took = time.perf_counter() - t
    best = took
    for _ in range(2):
        t = time.perf_counter()
        _busy(n)
        best = min(best, time.perf_counter() - t)
    return {"iters_per_s": n / best, "python": platform.python_version(),
            "implementation": platform.python_implementation()}


def _child_run(spec: dict) -> dict:
    import threading

    import spprof  # imported in the baseline too, so every child starts alike

    threads, mode, interval = spec["threads"], spec["mode"], spec["interval_ms"]
    per_thread = spec["iters"] // threads  # the same total work for every thread count
    busy_cpu = [0.0] * threads

    def work(i: int) -> None:
        c = time.thread_time()
        _busy(per_thread)
        busy_cpu[i] = time.thread_time() - c

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    t0, c0 = time.perf_counter(), time.process_time()
    if mode:
        spprof.start(interval_ms=interval, mode=mode)
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    profile = spprof.stop() if mode else None
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"wall_s": wall, "cpu_s": cpu, "busy_cpu_s": sum(busy_cpu),
            "counters": profile.counters if profile else None}


def _child_latency(spec: dict) -> dict:
    import threading

    import spprof

    done = threading.Event()

    def background() -> None:
        while not done.is_set():
            _busy(10_000)

    threading.Thread(target=background, daemon=True).start()
    starts, stops = [], []
    for _ in range(spec["repeats"]):
        t = time.perf_counter()
        spprof.start(interval_ms=10)
        starts.append(time.perf_counter() - t)
        end = time.perf_counter() + 0.050
        while time.perf_counter() < end:
            _busy(1_000)
        t = time.perf_counter()
        profile = spprof.stop()  # the Profile as users get it; saving is not timed
        stops.append(time.perf_counter() - t)
        del profile  # freed outside the timing, as a user's profile outlives stop()
    done.set()
    return {"start_s": starts, "stop_s": stops}


# ("sleep", 0): a clock_nanosleep loop with no Asio and no reads, the machine's own price of a wake
TIMER_VARIANTS = (("sleep", 0), ("", 0), ("vm_readv", 1), ("vm_readv", 2), ("pipe", 1), ("pipe", 2))


def timer_key(ms: int, reader: str, reads: int) -> str:
    return f"{ms}/{reader or 'none'}/{reads}"


def timer_table(timer: dict) -> str:
    out = ["| interval | clock_nanosleep alone | Asio timer alone | + 1 copy, process_vm_readv | + 2 copies"
           " | + 1 copy, pipe | + 2 copies |",
           "|---|---|---|---|---|---|---|"]
    for ms in (1, 10):
        cells = [f"{timer[timer_key(ms, r, n)]:.1f} µs" for r, n in TIMER_VARIANTS]
        out.append(f"| {ms} ms | " + " | ".join(cells) + " |")
    return "\n".join(out)


def _child_timer(spec: dict) -> dict:
    from spprof import _bench

    # Alternated and repeated, since the machine's wake-up cost drifts.
    out: dict = {}
    for _ in range(3):
        for ms in (1, 10):
            for reader, reads in TIMER_VARIANTS:
                if reader == "sleep":
                    per_wake = _bench.measure_sleep_wakeups(ms, int(1000 / ms)) / 1000
                else:
                    per_wake = _bench.measure_timer_wakeups(ms, int(1000 / ms), reader, reads) / 1000
                out.setdefault(timer_key(ms, reader, reads), []).append(per_wake)
    return {k: statistics.median(v) for k, v in out.items()}


def child_main(spec_json: str) -> None:
    spec = json.loads(spec_json)
    run = {"calibrate": _child_calibrate, "run": _child_run, "latency": _child_latency,
           "timer": _child_timer}[spec["kind"]]
    print(json.dumps(run(spec)))


# --------------------------------------------------------------- parent side

def run_child(python: str, spec: dict, timeout: float) -> dict:
    proc = subprocess.run([python, os.path.abspath(__file__), "--child", json.dumps(spec)],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"child {spec} failed ({proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def expected_samples(mode: str, interval_ms: float, threads: int, run: dict) -> float:
    if mode == "cpu":
        # One sample per interval of busy-thread CPU. With several threads sharing the GIL
        # and a long interval, every thread uses some CPU in each tick and gets a sample,
        # so collected can exceed this: read it as a floor there.
        return run["busy_cpu_s"] * 1000 / interval_ms
    # Wall mode samples every Python thread (the busy ones and the main one) on each tick.
    return run["wall_s"] * 1000 / interval_ms * (threads + 1)


def spread(values: list) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(threads: int, mode, interval, runs: list, baselines: list) -> dict:
    row = {"threads": threads, "mode": mode, "interval_ms": interval, "runs": runs}
    if mode is None:
        row["wall_s"] = spread([r["wall_s"] for r in runs])
        row["cpu_s"] = spread([r["cpu_s"] for r in runs])
        return row
    # Ratios per round against that round's baseline, so slow phases of the machine cancel out.
    row["wall_overhead_pct"] = spread([100 * (r["wall_s"] / b["wall_s"] - 1) for r, b in zip(runs, baselines)])
    row["cpu_overhead_pct"] = spread([100 * (r["cpu_s"] / b["cpu_s"] - 1) for r, b in zip(runs, baselines)])
    counters = [r["counters"] for r in runs]
    row["collected"] = statistics.median(c["collected_samples"] for c in counters)
    row["expected"] = statistics.median(expected_samples(mode, interval, threads, r) for r in runs)
    row["missed_ticks"] = statistics.median(c["missed_ticks"] for c in counters)
    # spprof's two threads' own CPU clocks against the run's process CPU: the CPU the profiler
    # adds, free of the run-to-run noise that end-to-end ratios carry on a shared machine.
    row["own_cpu_pct"] = spread([100 * (c["sampler_cpu_ns"] + c["collector_cpu_ns"]) / (r["cpu_s"] * 1e9)
                                 for c, r in zip(counters, runs)])
    row["collector_cpu_pct"] = statistics.median(100 * c["collector_cpu_ns"] / (r["cpu_s"] * 1e9)
                                                 for c, r in zip(counters, runs))
    row["us_per_tick"] = statistics.median(c["sampler_cpu_ns"] / c["ticks"] / 1000 for c in counters if c["ticks"])
    costs = [c["sampler_cpu_ns"] / c["collected_samples"] / 1000 for c in counters if c["collected_samples"]]
    row["us_per_sample"] = statistics.median(costs) if costs else None
    return row


def pct(s: dict) -> str:
    return f"{s['median']:+.2f} % ({s['min']:+.2f} – {s['max']:+.2f})"


def markdown(rows: list) -> str:
    out = ["| workload | interval | mode | spprof's threads' CPU / process CPU, median (min–max) | of which collector"
           " | wall overhead median (min–max) | CPU overhead median (min–max) | samples / expected"
           " | µs of sampler CPU per tick | missed ticks |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        load = f"{r['threads']} busy thread{'s' if r['threads'] > 1 else ''}"
        if r["mode"] is None:
            w, c = r["wall_s"]["median"], r["cpu_s"]["median"]
            out.append(f"| {load} | – | no profiler | – | – | baseline {w:.3f} s | baseline {c:.3f} s | – | – | – |")
            continue
        share = f"{r['collected']:.0f} / {r['expected']:.0f} ({100 * r['collected'] / r['expected']:.0f} %)" \
            if r["expected"] else f"{r['collected']:.0f} / 0"
        us = f"{r['us_per_tick']:.1f}"
        own = r["own_cpu_pct"]
        out.append(f"| {load} | {r['interval_ms']} ms | {r['mode']} | {own['median']:.2f} % ({own['min']:.2f} – {own['max']:.2f})"
                   f" | {r['collector_cpu_pct']:.2f} % | {pct(r['wall_overhead_pct'])}"
                   f" | {pct(r['cpu_overhead_pct'])} | {share} | {us} | {r['missed_ticks']:.0f} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=1.0, help="work per run, in seconds of one CPU")
    ap.add_argument("--quick", action="store_true", help="rounds=3, seconds=0.5, for CI smoke use")
    ap.add_argument("--seed", type=int, default=0, help="seed of the run order")
    ap.add_argument("--python", default=sys.executable, help="interpreter to run the children under")
    ap.add_argument("--output", default=RESULTS, help="JSON results path")
    ap.add_argument("--child", metavar="SPEC", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child_main(args.child)
    if args.quick:
        args.rounds, args.seconds = 3, 0.5

    command = shlex.join([sys.executable, *sys.argv])
    timeout = 120 + 20 * args.seconds
    calib = run_child(args.python, {"kind": "calibrate"}, timeout)
    iters = int(calib["iters_per_s"] * args.seconds)
    machine = {"nproc": nproc(), "cpu": cpu_model(), "python": f"{calib['implementation']} {calib['python']}",
               "interpreter": args.python, "command": command}
    print(f"Machine: nproc={machine['nproc']}, CPU: {machine['cpu']}, Python {machine['python']} ({args.python})")
    print(f"Command: {command}")
    print(f"Rounds: {args.rounds}, work per run: {args.seconds} s ({iters} loop iterations),"
          f" seed {args.seed}\n", flush=True)

    # Every workload x config once per round, shuffled, so drifts in machine load spread over all configs.
    cells = [(t, m, i) for t in WORKLOADS for m, i in CONFIGS]
    runs = {cell: [] for cell in cells}
    rng = random.Random(args.seed)
    for n in range(args.rounds):
        order = cells[:]
        rng.shuffle(order)
        for threads, mode, interval in order:
            spec = {"kind": "run", "threads": threads, "mode": mode, "interval_ms": interval, "iters": iters}
            runs[(threads, mode, interval)].append(run_child(args.python, spec, timeout))
        print(f"  round {n + 1}/{args.rounds} done", file=sys.stderr)

    rows = [summarize(t, m, i, runs[(t, m, i)], runs[(t, None, None)]) for t, m, i in cells]
    lat = run_child(args.python, {"kind": "latency", "repeats": LATENCY_REPEATS}, timeout)
    latency = {k: {"median_ms": 1000 * statistics.median(v), "max_ms": 1000 * max(v), "all_s": v}
               for k, v in (("start", lat["start_s"]), ("stop", lat["stop_s"]))}

    timer = run_child(args.python, {"kind": "timer"}, timeout)
    print(markdown(rows))
    print()
    print("CPU per wake of a thread that only sleeps (clock_nanosleep), on the Asio timer, and on the timer"
          " with copies of 256 bytes after each wake (medians of 3, 1 s each):")
    print(timer_table(timer))
    for k in ("start", "stop"):
        print(f"{k}() latency (1 busy background thread, interval 10 ms, {LATENCY_REPEATS} repeats): "
              f"median {latency[k]['median_ms']:.3f} ms, max {latency[k]['max_ms']:.3f} ms")

    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"machine": machine, "rounds": args.rounds, "seconds": args.seconds, "seed": args.seed,
                   "iters": iters, "rows": rows, "latency": latency, "timer_us_per_wake": timer}, f, indent=1)
    print(f"\nWrote {args.output}")


if __name__ == "__main__":
    main()
