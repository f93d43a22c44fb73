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

    bash bench/compare_setup.sh    # once: the venv with py-spy and echion
    ~/.cache/spprof/compare-venv/bin/python bench/scale.py --peers --rounds 5 --threads 100,1000

`--peers` instead runs the same program (one busy thread, the rest idle, `--seconds` long) bare,
under spprof in cpu and wall mode at 10 ms, under py-spy at 100 Hz with `--idle` (out of process,
so its own CPU is in the tree's) and under echion at 10 ms (wall mode), each a fresh process,
the configurations shuffled in each round, with bench/compare.py's launchers. Reports the CPU of
the whole process tree (what os.wait4 reports, each profiler's output written) against the
same round's bare run: median (min-max) over the rounds. Writes bench/results/scale_peers.json.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # also when run by a profiler's launcher
from _machine import cpu_model, nproc  # noqa: E402

THREADS = (1, 10, 100, 1000)
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "scale.json")
PEER_RESULTS = os.path.join(os.path.dirname(RESULTS), "scale_peers.json")


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


def workload(n, seconds, busy):
    """The program the peers profile: what child() runs, with no profiler of its own."""
    idle = threading.Event()
    threads = [threading.Thread(target=idle.wait, daemon=True) for _ in range(n - busy)]
    threads += [threading.Thread(target=spin_until, args=(idle,), daemon=True) for _ in range(busy - 1)]
    for t in threads:
        t.start()
    end = time.perf_counter() + seconds
    total = 0
    while time.perf_counter() < end:
        total += 1
    idle.set()


def peers(args):
    import compare  # bench/compare.py: the peers' launchers and the process tree's CPU
    py = args.python or os.path.join(compare.DEFAULT_VENV, "bin", "python")
    if not os.path.exists(py):
        py = sys.executable
    compare.ARGS_PY = py
    configs = [c for c in compare.CONFIGS if c.tool == "none"] + [
        compare._spprof("cpu", 10), compare._spprof("wall", 10),
        compare._pyspy(100, False, idle=True), compare._echion(10000)]
    skip = {c.key: why for c in configs if (why := compare.unavailable(c))}
    versions = compare.tool_versions()
    print(f"Machine: nproc={nproc()}, CPU: {cpu_model()}, interpreter {py}")
    print(f"Command: {' '.join([os.path.relpath(sys.executable)] + sys.argv)}")
    print("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v and k in ("spprof", "py-spy", "echion")))
    for key, why in skip.items():
        print(f"Skipped {key}: {why}")
    runnable = [c for c in configs if c.key not in skip]
    rng = random.Random(args.seed)
    counts = [int(t) for t in args.threads.split(",")]
    cpu = {(n, c.key): [] for n in counts for c in runnable}
    for r in range(args.rounds):
        for n in counts:
            order = list(runnable)
            rng.shuffle(order)
            for c in order:
                tmp = tempfile.mkdtemp(prefix="spprof-scale-")
                try:
                    argv = c.argv(py, os.path.abspath(__file__),
                                  ["--workload", str(n), str(args.seconds), str(args.busy)], os.path.join(tmp, "profile.out"))
                    with open(os.path.join(tmp, "stderr"), "wb") as se:
                        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=se, stdin=subprocess.DEVNULL, cwd=tmp)
                        status, ru = compare._wait(proc, 120 + 10 * args.seconds)
                    if status is None or os.waitstatus_to_exitcode(status) != 0:
                        with open(os.path.join(tmp, "stderr"), errors="replace") as f:
                            print(f"  round {r + 1}, {n} threads, {c.key}: failed: {f.read()[-300:]!r}", file=sys.stderr)
                        cpu[(n, c.key)].append(None)
                    else:
                        cpu[(n, c.key)].append(ru.ru_utime + ru.ru_stime)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
        print(f"  round {r + 1} of {args.rounds} done", file=sys.stderr, flush=True)
    none = [c.key for c in runnable if c.tool == "none"][0]
    print(f"\nProcess-tree CPU against the bare run, {args.rounds} interleaved rounds, {args.seconds} s, "
          f"{args.busy} busy thread(s), median (min–max):\n")
    print("| threads | " + " | ".join(c.key for c in runnable if c.tool != "none") + " | bare CPU |")
    print("|---|" + "---|" * len(runnable))
    rows = []
    for n in counts:
        cells, row = [], {"threads": n, "busy": args.busy}
        base = cpu[(n, none)]
        for c in runnable:
            if c.tool == "none":
                continue
            ratios = [x / b for x, b in zip(cpu[(n, c.key)], base) if x and b]
            s = compare.spread(ratios)
            row[c.key] = s
            cells.append("n/a" if not s else f"{s['median']:.2f}× ({s['min']:.2f}–{s['max']:.2f})")
        bs = compare.spread(base)
        row["bare_cpu_s"] = bs
        rows.append(row)
        cells.append(f"{bs['median']:.2f} s" if bs else "n/a")
        print(f"| {n} ({args.busy} busy) | " + " | ".join(cells) + " |")
    os.makedirs(os.path.dirname(PEER_RESULTS), exist_ok=True)
    with open(PEER_RESULTS, "w") as f:
        json.dump({"seconds": args.seconds, "rounds": args.rounds, "versions": versions, "rows": rows,
                   "raw": {f"{n} {k}": v for (n, k), v in cpu.items()}}, f)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--interval-ms", type=float, default=10)
    ap.add_argument("--busy", type=int, default=1, help="busy threads among the N (default 1)")
    ap.add_argument("--threads", default=",".join(map(str, THREADS)), help="the N to run, comma-separated")
    ap.add_argument("--modes", default="cpu,wall")
    ap.add_argument("--peers", action="store_true", help="spprof beside py-spy --idle and echion (see above)")
    ap.add_argument("--rounds", type=int, default=5, help="with --peers: interleaved rounds")
    ap.add_argument("--seed", type=int, default=0, help="with --peers: the shuffle's seed")
    ap.add_argument("--python", default=None, help="with --peers: the venv's interpreter (default: compare.py's venv)")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    ap.add_argument("--workload", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.workload:
        n, seconds, busy = args.workload
        return workload(int(n), float(seconds), int(busy))
    if args.peers:
        if args.threads == ",".join(map(str, THREADS)):
            args.threads = "100,1000"
        return peers(args)
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
