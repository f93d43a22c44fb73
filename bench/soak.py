"""Soak: profiles an 8-thread workload at 1 ms for a chosen time and watches memory.

What spprof holds grows by one 24-byte record per sample until memory_limit_mb, by design; the
check is that the process's RSS grows by no more than that (no leak beside it), that RSS is flat
once the bound is reached, and that stop() is still fast at the end.

    python bench/soak.py --seconds 1800                        # by hand: 30 minutes
    python bench/soak.py --seconds 60 --memory-limit-mb 2      # CI's short form (ci/test.sh):
                                                               # the bound is reached halfway
Exits 1 when RSS grows (by more than --slack-kib-min a minute) once the bound is reached, or, on a
run that never reaches it, faster than what spprof says it holds.
"""
import argparse
import json
import os
import threading
import time

import spprof


def rss_kib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def slope_per_min(points):
    # least squares of (seconds, KiB): KiB per minute
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    return 60 * sum((t - mx) * (v - my) for t, v in points) / var if var else 0.0


def worker(k, stop):
    # a mix of depths and functions, with short sleeps so threads come and go from the CPU
    def leaf(n):
        return sum(i * k for i in range(n))

    def mid(depth, n):
        return leaf(n) if depth == 0 else mid(depth - 1, n)

    while not stop.is_set():
        mid(k * 3, 20000)
        if k % 2:
            time.sleep(0.001)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--memory-limit-mb", type=float, default=100)
    ap.add_argument("--slack-kib-min", type=float, default=512,
                    help="allowed RSS growth per minute beyond what spprof holds")
    ap.add_argument("--json", default="bench/results/soak.json")
    args = ap.parse_args()

    stop = threading.Event()
    threads = [threading.Thread(target=worker, args=(k, stop), name=f"soak-{k}") for k in range(args.threads)]
    spprof.start(interval_ms=1, memory_limit_mb=args.memory_limit_mb)
    for t in threads:
        t.start()
    t0 = time.monotonic()
    series = []
    while (elapsed := time.monotonic() - t0) < args.seconds:
        time.sleep(1)
        s = spprof.stats()
        series.append((elapsed, rss_kib(), s.bytes_held / 1024, s.dropped_samples))
    last = spprof.stats()
    t_stop = time.perf_counter()
    profile = spprof.stop()
    stop_ms = (time.perf_counter() - t_stop) * 1e3
    stop.set()
    for t in threads:
        t.join()

    warm = [p for p in series if p[0] >= min(10.0, args.seconds / 4)]
    rss_slope = slope_per_min([(t, r) for t, r, _, _ in warm])
    held_slope = slope_per_min([(t, h) for t, _, h, _ in warm])
    unexplained = slope_per_min([(t, r - h) for t, r, h, _ in warm])
    # once samples are dropped for the bound, nothing should grow: a few seconds on, RSS is flat
    reached = next((t for t, _, _, d in series if d > 0), None)
    bounded = [p for p in series if reached is not None and p[0] >= reached + 5]
    bounded_slope = slope_per_min([(t, r) for t, r, _, _ in bounded]) if len(bounded) >= 10 else None
    result = {
        "seconds": round(series[-1][0], 1), "threads": args.threads, "samples": len(profile._data),
        "collected": last.collected_samples, "dropped": last.dropped_samples, "torn": last.torn_walks,
        "missed_ticks": last.missed_ticks, "rss_start_kib": series[0][1], "rss_end_kib": series[-1][1],
        "rss_slope_kib_min": round(rss_slope, 1), "held_slope_kib_min": round(held_slope, 1),
        "unexplained_slope_kib_min": round(unexplained, 1),
        "bound_reached_at_s": None if reached is None else round(reached, 1),
        "rss_slope_after_bound_kib_min": None if bounded_slope is None else round(bounded_slope, 1),
        "stop_ms": round(stop_ms, 2),
        "overhead_estimate_pct": round(last.overhead_estimate_pct, 2), "reader": last.reader,
    }
    os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({**result, "series": series}, f)
    for k, v in result.items():
        print(f"{k:>28}: {v}")
    # Before the bound, what spprof holds counts reserved capacity that RSS only reaches as the
    # pages fill: the two are compared only on a run that never reaches the bound.
    if bounded_slope is not None:
        ok = bounded_slope <= args.slack_kib_min
        verdict = f"once the bound was reached RSS grows {bounded_slope:.0f} KiB/min"
    else:
        ok = unexplained <= args.slack_kib_min
        verdict = f"RSS beyond what spprof holds grows {unexplained:.0f} KiB/min"
    print(f"soak: {'ok' if ok else 'FAILED'}: {verdict} (allowed {args.slack_kib_min:g})")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
