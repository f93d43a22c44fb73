"""Continuous profiling (issue 15) against the in-process agents a fleet runs today.

    bash bench/compare_setup.sh        # once: the venv with spprof from this checkout and the peers
    ~/.cache/spprof/compare-venv/bin/pip install pyroscope-io ddtrace    # if compare_setup.sh has not
    ~/.cache/spprof/compare-venv/bin/python bench/continuous.py --rounds 5 --seconds 20
    ~/.cache/spprof/compare-venv/bin/python bench/continuous.py --soak-minutes 10     # RSS, dead receiver

Configurations, each in a fresh process running bench/compare_workloads.py (a: one busy thread,
b: four threads, g: a 100-thread server with 5 busy) for the same fixed work:
- `bare`: no profiler;
- `spprof`: spprof.start_continuous() at 10 ms, 10 s windows, pushing to a local receiver of
  Pyroscope's ingest API (tests/pyroscope_receiver.py, in this process);
- `pyroscope-io`: Grafana's agent at 100 Hz pushing to the same receiver;
- `ddtrace`: Datadog's profiler (DD_PROFILING_ENABLED=1) writing pprof locally with
  DD_PROFILING_OUTPUT_PPROF, no agent to upload to.
Rounds interleave the configurations in a seeded shuffled order; the process CPU (os.wait4's
rusage) and wall time are reported as ratios to the same round's bare run, median and min-max.

--soak-minutes runs the `spprof` and `pyroscope-io` configurations on workload g for that long
against a receiver that is down (a closed port) and samples VmRSS every 10 s: the growth from the
first minute to the end is what a dead receiver costs in memory.
Writes bench/results/continuous.json and prints the tables.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
from pyroscope_receiver import Receiver  # noqa: E402

WORKLOAD = os.path.join(HERE, "compare_workloads.py")
RESULTS = os.path.join(HERE, "results")

SPPROF = r"""
import runpy, sys, spprof
url = sys.argv[1]
sys.argv = sys.argv[2:]
spprof.start_continuous("bench", push_url=url, window_s=10, interval_ms=10)
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    print(spprof.stop_continuous(), file=sys.stderr)
"""

PYROSCOPE = r"""
import runpy, sys, pyroscope
url = sys.argv[1]
sys.argv = sys.argv[2:]
pyroscope.configure(application_name="bench", server_address=url, sample_rate=100, upload_interval=10)
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    pyroscope.shutdown()
"""

DDTRACE = r"""
import runpy, sys
import ddtrace.profiling.auto  # noqa: F401  (DD_PROFILING_OUTPUT_PPROF: written locally)
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""

CONFIGS = {"bare": None, "spprof": SPPROF, "pyroscope-io": PYROSCOPE, "ddtrace": DDTRACE}


def available(config: str) -> bool:
    module = {"spprof": "spprof", "pyroscope-io": "pyroscope", "ddtrace": "ddtrace"}.get(config)
    if module is None:
        return True
    return subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True).returncode == 0


def run_one(config: str, workload: str, seconds: float, calibration: str, url: str, tmp: str) -> Dict[str, float]:
    argv = [WORKLOAD, workload, str(seconds), calibration]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPPROF_", "DD_"))}
    if config == "ddtrace":
        env.update(DD_PROFILING_ENABLED="1", DD_PROFILING_OUTPUT_PPROF=os.path.join(tmp, "dd"),
                   DD_TRACE_ENABLED="0", DD_INSTRUMENTATION_TELEMETRY_ENABLED="0")
    code = CONFIGS[config]
    cmd = [sys.executable, *argv] if code is None else [sys.executable, "-c", code, url, *argv]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{config} on {workload} exited {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime}


def soak(minutes: float, calibration: str, tmp: str) -> Dict[str, List[int]]:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    out: Dict[str, List[int]] = {}
    for config in ("spprof", "pyroscope-io"):
        if not available(config):
            continue
        cmd = [sys.executable, "-c", CONFIGS[config], dead, WORKLOAD, "g", str(minutes * 60), calibration]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rss: List[int] = []
        while proc.poll() is None:
            try:
                with open(f"/proc/{proc.pid}/status") as f:
                    rss += [int(line.split()[1]) for line in f if line.startswith("VmRSS:")]
            except OSError:
                break
            time.sleep(10)
        out[config] = rss
        print(f"{config}: VmRSS {rss[min(6, len(rss) - 1)] if rss else 0} kB after a minute, "
              f"{rss[-1] if rss else 0} kB at the end", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--workloads", default="a,b,g")
    ap.add_argument("--only", default=",".join(CONFIGS))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--soak-minutes", type=float, default=0)
    ns = ap.parse_args()
    os.makedirs(RESULTS, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="spprof-continuous-")
    calibration = subprocess.run([sys.executable, WORKLOAD, "--calibrate"], capture_output=True, text=True,
                                 check=True).stdout.strip()
    results: Dict[str, object] = {}
    if ns.soak_minutes:
        results["soak_rss_kb"] = soak(ns.soak_minutes, calibration, tmp)
    else:
        configs = [c for c in ns.only.split(",") if c == "bare" or available(c)]
        if "bare" not in configs:
            configs.insert(0, "bare")
        receiver = Receiver()
        rng = random.Random(ns.seed)
        runs: Dict[str, Dict[str, List[Dict[str, float]]]] = {}
        for r in range(ns.rounds):
            order = [(w, c) for w in ns.workloads.split(",") for c in configs]
            rng.shuffle(order)
            for w, c in order:
                runs.setdefault(w, {}).setdefault(c, []).append(run_one(c, w, ns.seconds, calibration, receiver.url, tmp))
            print(f"round {r + 1}/{ns.rounds} done", flush=True)
        receiver.close()
        table = {}
        print(f"\n{'workload':<10}{'config':<14}{'CPU ratio (min-max)':<28}{'wall ratio (min-max)':<28}")
        for w, by in runs.items():
            for c in configs:
                if c == "bare":
                    continue
                ratios = {k: [run[k] / base[k] for run, base in zip(by[c], by["bare"])] for k in ("cpu", "wall")}
                table[f"{w}/{c}"] = ratios
                cell = {k: f"{statistics.median(v):.3f} ({min(v):.3f}-{max(v):.3f})" for k, v in ratios.items()}
                print(f"{w:<10}{c:<14}{cell['cpu']:<28}{cell['wall']:<28}")
        results["ratios"] = table
        results["windows_received"] = len(receiver.requests)
    with open(os.path.join(RESULTS, "continuous.json"), "w") as f:
        json.dump(results, f, indent=1)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
