"""How the sampler's cost grows with the number of threads: one busy thread and N-1 that sleep
on an Event (a server's idle workers), for N in 1, 10, 100, 1000, in cpu and wall mode.

    .venv/bin/python bench/scale.py [--seconds 2] [--interval-ms 10]

Each configuration runs in a fresh process. Reports the sampler thread's CPU per tick (its own
thread clock over the ticks it made), that CPU as a share of the process's, and the samples a
tick. Writes bench/results/scale.json. It asserts nothing.
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


def child(n, mode, interval_ms, seconds):
    import spprof
    idle = threading.Event()
    sleepers = [threading.Thread(target=idle.wait, daemon=True) for _ in range(n - 1)]
    for t in sleepers:
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
                      "samples": s["collected_samples"], "threads_seen": s["threads_seen"]}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--interval-ms", type=float, default=10)
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        n, mode, interval, seconds = args.child
        return child(int(n), mode, float(interval), float(seconds))
    print(f"Machine: nproc={nproc()}, CPU: {cpu_model()}, Python {sys.version.split()[0]}")
    print(f"Command: {' '.join([os.path.relpath(sys.executable)] + sys.argv)}\n")
    print("| threads (1 busy) | mode | sampler CPU per tick | sampler CPU / process CPU | samples per tick |")
    print("|---|---|---|---|---|")
    rows = []
    for mode in ("cpu", "wall"):
        for n in THREADS:
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", str(n), mode,
                                  str(args.interval_ms), str(args.seconds)], capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            r.update(threads=n, mode=mode)
            rows.append(r)
            ticks = max(r["ticks"], 1)
            print(f"| {n} | {mode} | {r['sampler_cpu_ns'] / ticks / 1e3:.1f} µs | "
                  f"{100 * r['sampler_cpu_ns'] / max(r['process_cpu_ns'], 1):.2f} % | {r['samples'] / ticks:.1f} |")
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump({"interval_ms": args.interval_ms, "seconds": args.seconds, "rows": rows}, f)


if __name__ == "__main__":
    main()
