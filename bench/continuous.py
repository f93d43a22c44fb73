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
Those ratios move by a few percent between identical runs on a shared machine, so each process
also accounts its profiler's own cost: the CPU of its threads and of the stop that sends the last
window, as a share of the process's CPU, and the CPU of importing and starting it. Work a
profiler does on the application's own threads (hooks, allocation tracking) is only in the ratios.

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

# Each configuration runs in this frame: it accounts its profiler's own CPU, which the process-CPU
# ratio (noisy by a few percent on a shared machine) cannot resolve at the 1 % level: the CPU of
# every thread but the main one, read just before the profiler is stopped (the workload's threads
# have all been joined by then), plus the CPU the stop itself took (the last window's export and
# upload), plus what importing and starting the profiler took before the workload began.
FRAME = r"""
import json, os, runpy, sys, time
sys.path.insert(0, %(here)r)
from _machine import other_threads_cpu_s as threads_cpu
del sys.path[0]
url = sys.argv[1]
sys.argv = sys.argv[2:]
t0 = time.process_time()
%(start)s
t1 = time.process_time()
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    own = threads_cpu()
    t2 = time.process_time()
    %(stop)s
    t3 = time.process_time()
    print("ACCOUNT " + json.dumps({"start": t1 - t0, "threads": own, "stop": t3 - t2, "process": t3}), file=sys.stderr)
"""

PROFILERS = {
    "bare": ("pass", "pass"),
    "spprof": ("import spprof; spprof.start_continuous('bench', push_url=url, window_s=10, interval_ms=10)",
               "spprof.stop_continuous()"),
    "pyroscope-io": ("import pyroscope; pyroscope.configure(application_name='bench', server_address=url, "
                     "sample_rate=100, upload_interval=10)", "pyroscope.shutdown()"),
    "ddtrace": ("import ddtrace.profiling.auto; from ddtrace.profiling import bootstrap",
                "bootstrap.profiler.stop()"),
}

CONFIGS = {name: FRAME % {"start": start, "stop": stop, "here": HERE} for name, (start, stop) in PROFILERS.items()}
# --baseline DIR: spprof as installed in DIR (`pip install --target DIR` of another commit), run
# beside this one in the same interleaved rounds, so that a change is measured against the same noise
CONFIGS["spprof-base"] = CONFIGS["spprof"]
BASELINE_DIR = ""


def config_env(config: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPPROF_", "DD_"))}
    env.pop("PYTHONPATH", None)
    if config == "spprof-base":
        env["PYTHONPATH"] = BASELINE_DIR
    return env


def agent_env(config: str, tmp: str) -> Dict[str, str]:
    """What an agent's process needs in its environment besides PROFILERS' start."""
    if config == "ddtrace":
        # DD_PROFILING_OUTPUT_PPROF: written locally, no agent to upload to
        return {"DD_PROFILING_ENABLED": "1", "DD_PROFILING_OUTPUT_PPROF": os.path.join(tmp, "dd"),
                "DD_TRACE_ENABLED": "0", "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "0"}
    return {}


def available(config: str) -> bool:
    module = {"spprof": "spprof", "spprof-base": "spprof", "pyroscope-io": "pyroscope", "ddtrace": "ddtrace"}.get(config)
    if module is None or (config == "spprof-base" and not BASELINE_DIR):
        return module is None
    return subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True,
                          env=config_env(config)).returncode == 0


def run_one(config: str, workload: str, seconds: float, calibration: str, url: str, tmp: str) -> Dict[str, float]:
    argv = [WORKLOAD, workload, str(seconds), calibration]
    env = config_env(config)
    env.update(agent_env(config, tmp))
    cmd = [sys.executable, "-c", CONFIGS[config], url, *argv]
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - t0
        err.seek(0)
        text = err.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{config} on {workload} exited {os.waitstatus_to_exitcode(status)}: {text[-2000:]}")
    account = json.loads([line for line in text.splitlines() if line.startswith("ACCOUNT ")][-1][8:])
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "start_ms": 1000 * account["start"],
            "own_share": (account["threads"] + account["stop"]) / account["process"]}


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
    ap.add_argument("--only", default=",".join(c for c in CONFIGS if c != "spprof-base"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--soak-minutes", type=float, default=0)
    ap.add_argument("--baseline", default="", help="a folder holding another build of spprof (pip install --target): "
                    "measured as spprof-base in the same rounds")
    ns = ap.parse_args()
    global BASELINE_DIR
    BASELINE_DIR = os.path.abspath(ns.baseline) if ns.baseline else ""
    os.makedirs(RESULTS, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="spprof-continuous-")
    calibration = subprocess.run([sys.executable, WORKLOAD, "--calibrate"], capture_output=True, text=True,
                                 check=True).stdout.strip()
    results: Dict[str, object] = {}
    if ns.soak_minutes:
        results["soak_rss_kb"] = soak(ns.soak_minutes, calibration, tmp)
    else:
        wanted = ns.only.split(",") + (["spprof-base"] if BASELINE_DIR and "spprof-base" not in ns.only else [])
        configs = [c for c in wanted if c == "bare" or available(c)]
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
        print(f"\n{'workload':<10}{'config':<14}{'CPU ratio (min-max)':<28}{'wall ratio (min-max)':<28}"
              f"{'own threads + stop, % of CPU':<30}{'import + start':<14}")
        for w, by in runs.items():
            for c in configs:
                if c == "bare":
                    continue
                ratios = {k: [run[k] / base[k] for run, base in zip(by[c], by["bare"])] for k in ("cpu", "wall")}
                table[f"{w}/{c}"] = ratios
                for k in ("own_share", "start_ms"):
                    ratios[k] = [run[k] for run in by[c]]
                cell = {k: f"{statistics.median(v):.3f} ({min(v):.3f}-{max(v):.3f})" for k, v in ratios.items()}
                own = [100 * x for x in ratios["own_share"]]
                share = f"{statistics.median(own):.2f} % ({min(own):.2f}-{max(own):.2f})"
                start = f"{statistics.median(ratios['start_ms']):.0f} ms"
                print(f"{w:<10}{c:<14}{cell['cpu']:<28}{cell['wall']:<28}{share:<30}{start:<14}")
        results["ratios"] = table
        results["windows_received"] = len(receiver.requests)
    with open(os.path.join(RESULTS, "continuous.json"), "w") as f:
        json.dump(results, f, indent=1)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
