"""How the sampler's cost grows with the number of threads: one busy thread and N-1 that sleep
on an Event (a server's idle workers), for N in 1, 10, 100, 1000, in cpu and wall mode.

    .venv/bin/python bench/scale.py [--seconds 2] [--interval-ms 10] [--busy 1] [--threads 1,10,100,1000]
    perf record -e cpu-clock -F 20000 -g .venv/bin/python bench/scale.py --busy 5 --threads 100 --modes cpu --seconds 10
    perf report --comm spprof-sampler --percentage relative --children --sort sym -g none

`--busy K` makes K of the N threads busy (the main thread and K-1 more); the second pair of
commands shows where the sampler's time goes in the 100-thread server of bench/compare.py (g).

Each configuration runs in a fresh process. Reports the sampler thread's CPU per tick (its own
thread clock over the ticks it made), that CPU and the collector thread's as shares of the
process's, and the samples a tick. Writes bench/results/scale.json. It asserts nothing.
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

from _machine import cpu_model, nproc

THREADS = (1, 10, 100, 1000)
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "scale.json")


def spin_until(done):
    while not done.is_set():
        for _ in range(10_000):
            pass


def child(n, mode, interval_ms, seconds, busy):
    import spprof
    idle = threading.Event()
    sleepers = [threading.Thread(target=idle.wait, daemon=True) for _ in range(n - busy)]
    workers = [threading.Thread(target=spin_until, args=(idle,), daemon=True) for _ in range(busy - 1)]
    for t in sleepers + workers:
        t.start()
    spprof.start(interval_ms=interval_ms, mode=mode)
    end = time.perf_counter() + seconds
    total = 0
    while time.perf_counter() < end:
        total += 1
    s = spprof._native.stats()
    spprof.stop()
    idle.set()
    print(json.dumps({"ticks": s["ticks"], "sampler_cpu_ns": s["sampler_cpu_ns"], "process_cpu_ns": s["process_cpu_ns"],
                      "collector_cpu_ns": s["collector_cpu_ns"],
                      "samples": s["collected_samples"], "threads_seen": s["threads_seen"]}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--interval-ms", type=float, default=10)
    ap.add_argument("--busy", type=int, default=1, help="busy threads among the N (default 1)")
    ap.add_argument("--threads", default=",".join(map(str, THREADS)), help="the N to run, comma-separated")
    ap.add_argument("--modes", default="cpu,wall")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        n, mode, interval, seconds, busy = args.child
        return child(int(n), mode, float(interval), float(seconds), int(busy))
    print(f"Machine: nproc={nproc()}, CPU: {cpu_model()}, Python {sys.version.split()[0]}")
    print(f"Command: {' '.join([os.path.relpath(sys.executable)] + sys.argv)}\n")
    print(f"| threads ({args.busy} busy) | mode | sampler CPU per tick | sampler CPU / process CPU | "
          "collector CPU / process CPU | samples per tick |")
    print("|---|---|---|---|---|---|")
    rows = []
    for mode in args.modes.split(","):
        for n in (int(t) for t in args.threads.split(",")):
            if n < args.busy:
                continue
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", str(n), mode,
                                  str(args.interval_ms), str(args.seconds), str(args.busy)],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            r.update(threads=n, mode=mode)
            rows.append(r)
            ticks = max(r["ticks"], 1)
            print(f"| {n} | {mode} | {r['sampler_cpu_ns'] / ticks / 1e3:.1f} µs | "
                  f"{100 * r['sampler_cpu_ns'] / max(r['process_cpu_ns'], 1):.2f} % | "
                  f"{100 * r['collector_cpu_ns'] / max(r['process_cpu_ns'], 1):.2f} % | {r['samples'] / ticks:.1f} |")
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump({"interval_ms": args.interval_ms, "seconds": args.seconds, "busy": args.busy, "rows": rows}, f)


if __name__ == "__main__":
    main()
