"""spprof side by side with other Python profilers: what each costs and how right it is.

    bash bench/compare_setup.sh                  # once: the venv with spprof and the peers
    ~/.cache/spprof/compare-venv/bin/python bench/compare.py --rounds 3   # ~20 min on 2 CPUs
    ~/.cache/spprof/compare-venv/bin/python bench/compare.py --quick --only spprof,py-spy --workloads a,b

Every run is a fresh process: the workload script (bench/compare_workloads.py) run bare, under
spprof (started in-process by a small runner: start, runpy, stop, save), or under another
profiler's own command line. Each round runs every (workload, config) once in a seeded shuffled
order; ratios are to the same round's unprofiled run of the workload, reported as the median
over rounds with min-max. Wall time is spawn to reap; CPU is the os.wait4() rusage of the
spawned process, which includes the children it waited for (so for py-spy and austin, which
sample from another process, it is the profiler plus the program; the program's own CPU comes
from the workload itself at exit, and the rest is shown as the profiler's). Accuracy is read
from each profiler's own output file; whatever cannot be read from it is "n/a".
Writes bench/results/compare.json and bench/results/compare.md, and prints the tables.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import pstats
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOAD_SCRIPT = os.path.join(HERE, "compare_workloads.py")
RESULTS = os.path.join(HERE, "results")
DEFAULT_VENV = os.path.expanduser(os.environ.get("SPPROF_COMPARE_VENV", "~/.cache/spprof/compare-venv"))

sys.path.insert(0, HERE)
from _machine import cpu_model  # noqa: E402
from compare_workloads import WORKLOADS  # noqa: E402

# The in-process spprof runner: start, run the workload as __main__, stop, save.
SPPROF_RUNNER = r"""
import json, runpy, sys
import spprof
mode, ms, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
sys.argv = sys.argv[4:]
spprof.start(interval_ms=ms, mode=mode)
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    p = spprof.stop()
    p.save(out)
    with open(out + ".counters.json", "w") as f:
        json.dump(p.counters, f)
"""


# ------------------------------------------------------------------ configs
# tool, label, clock (what a sample's time is: "cpu" = on-CPU only, "wall" = idle too),
# interval_ms (None for tracers), out_of_process, argv builder, output parser.

class Config:
    def __init__(self, tool: str, label: str, clock: Optional[str], interval_ms: Optional[float],
                 argv: Callable[[str, str, List[str], str], List[str]], parse: Optional[str],
                 out_of_process: bool = False, quick: bool = False, threads: str = "all"):
        self.tool, self.label, self.clock, self.interval_ms = tool, label, clock, interval_ms
        self.argv, self.parse, self.out_of_process, self.quick = argv, parse, out_of_process, quick
        self.threads = threads  # which threads the tool sees: "all" or "main"

    @property
    def key(self) -> str:
        return f"{self.tool} {self.label}".strip()


def _bin(py: str, name: str) -> str:
    return os.path.join(os.path.dirname(py), name)


def _spprof(mode: str, ms: int, quick: bool = False) -> Config:
    return Config("spprof", f"{mode} {ms} ms", mode, ms,
                  lambda py, w, a, out: [py, "-c", SPPROF_RUNNER, mode, str(ms), out, w, *a],
                  "speedscope", quick=quick)


def _pyspy(hz: int, nonblocking: bool, quick: bool = False, idle: bool = False) -> Config:
    # --idle: waiting threads are sampled too (its wall clock)
    extra = (["--nonblocking"] if nonblocking else []) + (["--idle"] if idle else [])
    return Config("py-spy", f"{hz} Hz" + (" nonblocking" if nonblocking else "") + (" --idle" if idle else ""),
                  "wall" if idle else "cpu", 1000 / hz,
                  lambda py, w, a, out: [_bin(py, "py-spy"), "record", "-r", str(hz), "-t", "-f", "raw",
                                         "-o", out, *extra, "--", py, w, *a],
                  "pyspy_raw", out_of_process=True, quick=quick)


def _pyinstrument(interval_s: Optional[float], quick: bool = False) -> Config:
    extra = ["-i", str(interval_s)] if interval_s else []
    label = f"{interval_s * 1000:g} ms" if interval_s else "default (1 ms)"
    return Config("pyinstrument", label, "wall", (interval_s or 0.001) * 1000,
                  lambda py, w, a, out: [_bin(py, "pyinstrument"), *extra, "-r", "pyisession", "-o", out, w, *a],
                  "pyisession", quick=quick, threads="main")


def _echion(us: int, quick: bool = False) -> Config:
    return Config("echion", f"{us / 1000:g} ms", "wall", us / 1000,
                  lambda py, w, a, out: [_bin(py, "echion"), "-i", str(us), "-o", out, py, w, *a],
                  "mojo", quick=quick)


def _austin(ms: int, quick: bool = False) -> Config:
    return Config("austin", f"{ms} ms", "wall", ms,
                  # -t: wait up to 1 s (not 0.1 s) for the new interpreter to come up, which a
                  # busy 2-CPU machine sometimes needs
                  lambda py, w, a, out: [_bin(py, "austin"), "-i", f"{ms}ms", "-t", "1s", "-o", out, py, w, *a],
                  "austin", out_of_process=True, quick=quick)


def _yappi(clock: str, quick: bool = False) -> Config:
    return Config("yappi", clock, clock, None,
                  lambda py, w, a, out: [_bin(py, "yappi"), "-c", clock, "-f", "pstat", "-o", out, w, *a],
                  "pstats", quick=quick)


CONFIGS: List[Config] = [
    Config("none", "", None, None, lambda py, w, a, out: [py, w, *a], None, quick=True),
    _spprof("cpu", 1), _spprof("cpu", 10, quick=True), _spprof("cpu", 100),
    _spprof("wall", 1), _spprof("wall", 10, quick=True), _spprof("wall", 100),
    _pyspy(100, False, quick=True), _pyspy(1000, False), _pyspy(100, True),
    _pyinstrument(None, quick=True),  # its default interval is 1 ms
    _echion(1000), _echion(10000, quick=True),
    _austin(1), _austin(10, quick=True),
    # scalene counts time spent blocked unless given --use-virtual-time: a wall clock
    Config("scalene", "--cpu-only", "wall", 10,
           lambda py, w, a, out: [_bin(py, "scalene"), "run", "--cpu-only", "-o", out, w, "---", *a],
           "scalene", quick=True),
    _yappi("wall"), _yappi("cpu", quick=True),
    Config("cProfile", "", "wall", None,
           lambda py, w, a, out: [py, "-m", "cProfile", "-o", out, w, *a], "pstats", quick=True,
           threads="main"),
]
TOOLS = sorted({c.tool for c in CONFIGS} - {"none"})
EXE = {"py-spy": "py-spy", "pyinstrument": "pyinstrument", "echion": "echion", "austin": "austin",
       "scalene": "scalene", "yappi": "yappi"}


# ------------------------------------------------------------ output parsers
# Each returns a list of (thread, frames root->leaf as function names, weight, samples).

Stacks = List[Tuple[str, Tuple[str, ...], float, int]]


def _fn(qualname: str) -> str:
    return qualname.rsplit(".", 1)[-1] if not qualname.startswith("<") else qualname


def parse_speedscope(path: str) -> Stacks:
    with open(path) as f:
        doc = json.load(f)
    names = [_fn(fr["name"]) for fr in doc["shared"]["frames"]]
    out: Stacks = []
    for prof in doc["profiles"]:
        for stack, w in zip(prof["samples"], prof["weights"]):
            out.append((prof["name"], tuple(names[i] for i in stack), float(w), 1))
    return out


def parse_pyspy_raw(path: str) -> Stacks:
    out: Stacks = []
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            parts = stack.split(";")
            thread = parts[0]  # "thread (0x...)" with -t, possibly followed by ": name"
            frames = tuple(_fn(p.rsplit(" (", 1)[0]) for p in parts[1:])
            out.append((thread, frames, float(count), int(count)))
    return out


def parse_austin(path: str) -> Stacks:
    # Austin's text format (also what mojo2austin writes): P<pid>;T<tid>[;file:function:line]... metric
    out: Stacks = []
    with open(path, errors="replace") as f:
        for line in f:
            if not line.startswith("P"):
                continue
            stack, _, metric = line.rstrip("\n").rpartition(" ")
            try:
                w = float(metric)
            except ValueError:
                continue
            parts = stack.split(";")
            if len(parts) < 2:
                continue
            frames = []
            for p in parts[2:]:
                bits = p.rsplit(":", 2)
                frames.append(_fn(bits[1]) if len(bits) == 3 else p)
            out.append((parts[1], tuple(frames), w, 1))
    return out


def parse_mojo(path: str) -> Stacks:
    conv = _bin(ARGS_PY, "mojo2austin")
    if not os.path.exists(conv):
        raise RuntimeError("mojo2austin (austin-python) not installed")
    txt = path + ".txt"
    subprocess.run([conv, path, txt], check=True, capture_output=True, timeout=300)
    try:
        return parse_austin(txt)
    finally:
        os.unlink(txt)


def parse_pyisession(path: str) -> Stacks:
    with open(path) as f:
        doc = json.load(f)
    out: Stacks = []
    for stack, t in doc["frame_records"]:
        names = [s.split("\x00", 1)[0] for s in stack]
        thread = names[0] if stack and "\x00<thread>\x00" in stack[0] else "main"
        frames = tuple(names[1:] if thread != "main" else names)
        out.append((thread, frames, float(t), 0))  # records are merged runs of samples: no count
    return out


class ScaleneProfile:
    """Scalene's JSON: CPU % per function (its main report, self time: right for the leaf
    functions the workloads name) and, on the side, sampled stacks (for inclusive time)."""

    def __init__(self, path: str):
        with open(path) as f:
            doc = json.load(f)
        self.self_pct: Dict[str, float] = {}
        for info in doc.get("files", {}).values():
            for fn in info.get("functions", []):
                n = _fn(fn["line"])
                pct = fn.get("n_cpu_percent_python", 0.0) + fn.get("n_cpu_percent_c", 0.0)
                self.self_pct[n] = self.self_pct.get(n, 0.0) + pct
        self.stacks: Stacks = []
        for stack, info in doc.get("stacks", []):
            frames = tuple(_fn(s.rstrip(";").rsplit(" ", 1)[-1].rsplit(":", 1)[0]) for s in stack)
            self.stacks.append(("?", frames, float(info.get("cpu_samples", 0.0)), int(info.get("count", 0))))


class PStatsProfile:
    """cProfile's and yappi's pstats: inclusive time per function, no stacks."""

    def __init__(self, path: str):
        st = pstats.Stats(path).stats  # type: ignore[attr-defined]
        self.cum: Dict[str, float] = {}
        for (_file, _line, name), (_cc, _nc, _tt, ct, _callers) in st.items():
            n = _fn(name)
            self.cum[n] = self.cum.get(n, 0.0) + ct


PARSERS = {"speedscope": parse_speedscope, "pyspy_raw": parse_pyspy_raw, "austin": parse_austin,
           "mojo": parse_mojo, "pyisession": parse_pyisession, "scalene": ScaleneProfile,
           "pstats": PStatsProfile}
# The workloads' functions that run their work themselves (no Python callee), for self-time reports.
LEAVES = {"seventy", "thirty", "worker1", "worker2", "worker3", "worker4", "in_builtin", "in_python",
          "cpu_part", "sleep_part", "cpu_worker", "idle_waiter", "first_half", "second_half"}


def inclusive(data, names: List[str]) -> Tuple[Dict[str, float], Dict[str, int]]:
    """Weight (and sample count) of the samples whose stack holds each function."""
    if isinstance(data, PStatsProfile):
        return {n: data.cum.get(n, 0.0) for n in names}, {}
    if isinstance(data, ScaleneProfile):
        if all(n in LEAVES for n in names):
            return {n: data.self_pct.get(n, 0.0) for n in names}, {}
        data = data.stacks
    w = {n: 0.0 for n in names}
    c = {n: 0 for n in names}
    for _thread, frames, weight, count in data:
        present = set(frames)
        for n in names:
            if n in present:
                w[n] += weight
                c[n] += count
    return w, c


# ------------------------------------------------------------- the metrics
# What each workload's truth is, as shares of named functions (each share over the listed names).

def metrics(workload: str, cfg: Config, data, truth: dict, interval_ms: Optional[float]) -> dict:
    m: dict = {}
    if workload == "a":
        w, c = inclusive(data, ["seventy", "thirty"])
        tot = w["seventy"] + w["thirty"]
        if tot > 0:
            m["share_pct"] = {"seventy": 100 * w["seventy"] / tot, "thirty": 100 * w["thirty"] / tot}
            m["error_pts"] = abs(m["share_pct"]["seventy"] - 70.0)
        if c and interval_ms and sum(c.values()) > 0 and "cpu_s" in truth and cfg.parse != "pyisession":
            m["samples"] = c["seventy"] + c["thirty"]
            # one sample per interval of the thread's time in the two: CPU time for a tool that
            # samples on-CPU threads, wall time for one that samples every thread
            t = truth["cpu_s"] if cfg.clock == "cpu" else truth.get("wall_s", truth["cpu_s"])
            m["expected"] = sum(t.values()) * 1000 / interval_ms
    elif workload == "b":
        # truth: 10/20/30/40 of the CPU, whatever the tool's clock (a wall-clock tool also
        # counts the time a thread waits for the GIL, and so flattens the split)
        names = ["worker1", "worker2", "worker3", "worker4"]
        w, _ = inclusive(data, names)
        tot = sum(w.values())
        if tot > 0:
            m["share_pct"] = {n: 100 * w[n] / tot for n in names}
            m["error_pts"] = max(abs(m["share_pct"][n] - 10.0 * (i + 1)) for i, n in enumerate(names))
            if "wall_s" in truth:
                # what a wall-clock tool, which also counts the threads waiting for the GIL, sees
                tw = sum(truth["wall_s"].values())
                m["lifetime_shares_pct"] = {n: 100 * truth["wall_s"][n] / tw for n in names}
    elif workload == "c":
        w, _ = inclusive(data, ["tiny", "many_calls"])
        if w["many_calls"] > 0:
            m["info"] = {"tiny_pct_of_caller": 100 * w["tiny"] / w["many_calls"]}
    elif workload == "d":
        w, _ = inclusive(data, ["bottom", "recurse"])
        if w["recurse"] > 0:
            m["leaf_reached_pct"] = 100 * w["bottom"] / w["recurse"]
            m["error_pts"] = abs(100 - m["leaf_reached_pct"])
    elif workload == "e":
        w, _ = inclusive(data, ["in_builtin", "in_python"])
        tot = w["in_builtin"] + w["in_python"]
        if tot > 0 and "cpu_s" in truth:
            tc = truth["cpu_s"] if cfg.clock == "cpu" else truth.get("wall_s", truth["cpu_s"])
            m["share_pct"] = {"in_builtin": 100 * w["in_builtin"] / tot}
            m["truth_pct"] = 100 * tc["in_builtin"] / (tc["in_builtin"] + tc["in_python"])
            m["error_pts"] = abs(m["share_pct"]["in_builtin"] - m["truth_pct"])
    elif workload == "f":
        w, _ = inclusive(data, ["cpu_part", "sleep_part"])
        tot = w["cpu_part"] + w["sleep_part"]
        if tot > 0 and "wall_s" in truth:
            tw = truth["wall_s"]
            m["share_pct"] = {"cpu_part": 100 * w["cpu_part"] / tot}
            m["truth_pct"] = 100.0 if cfg.clock == "cpu" else 100 * tw["cpu_part"] / (tw["cpu_part"] + tw["sleep_part"])
            m["error_pts"] = abs(m["share_pct"]["cpu_part"] - m["truth_pct"])
    elif workload == "g":
        w, _ = inclusive(data, ["cpu_worker", "idle_waiter"])
        tot = w["cpu_worker"] + w["idle_waiter"]
        if tot > 0:
            m["share_pct"] = {"cpu_worker": 100 * w["cpu_worker"] / tot}
            m["truth_pct"] = 100.0 if cfg.clock == "cpu" else 5.0
            m["error_pts"] = abs(m["share_pct"]["cpu_worker"] - m["truth_pct"])
    elif workload == "h":
        w, _ = inclusive(data, ["first_half", "second_half"])
        tot = w["first_half"] + w["second_half"]
        if tot > 0:
            m["share_pct"] = {"first_half": 100 * w["first_half"] / tot}
            m["truth_pct"] = 50.0  # each spins on the clock for half of every millisecond
            m["error_pts"] = abs(m["share_pct"]["first_half"] - 50.0)
    return m


# ----------------------------------------------------------------- running

ARGS_PY = sys.executable  # the bench venv's python, set in main()
OUT_NAMES = {"speedscope": "profile.json", "scalene": "profile.json", "pyisession": "profile.pyisession",
             "mojo": "profile.mojo", "pstats": "profile.prof", "pyspy_raw": "profile.txt", "austin": "profile.txt"}


def run_one(cfg: Config, workload: str, seconds: float, cal: dict, timeout: float) -> dict:
    tmp = tempfile.mkdtemp(prefix="spprof-compare-")
    try:
        out = os.path.join(tmp, OUT_NAMES.get(cfg.parse or "", "profile.out"))
        truth_path = os.path.join(tmp, "truth.json")
        argv = cfg.argv(ARGS_PY, WORKLOAD_SCRIPT, [workload, repr(seconds), json.dumps(cal)], out)
        env = dict(os.environ, COMPARE_TRUTH=truth_path, PYTHONDONTWRITEBYTECODE="1")
        with open(os.path.join(tmp, "stdout"), "wb") as so, open(os.path.join(tmp, "stderr"), "wb") as se:
            t0 = time.perf_counter()
            proc = subprocess.Popen(argv, stdout=so, stderr=se, stdin=subprocess.DEVNULL, cwd=tmp, env=env)
            status, ru = _wait(proc, timeout)
            wall = time.perf_counter() - t0
        res: dict = {"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime if ru else None}
        if status is None:
            res["error"] = f"timed out after {timeout:.0f} s"
            return res
        code = os.waitstatus_to_exitcode(status)
        try:
            with open(truth_path) as f:
                truth = json.load(f)
        except (OSError, ValueError):
            truth = {}
        res["truth"] = truth
        if code != 0 or not truth:
            with open(os.path.join(tmp, "stderr"), errors="replace") as f:
                tail = f.read()[-600:].strip().splitlines()
            tail = [re.sub(r"\x1b\[[0-9;]*m", "", t).strip() for t in tail]
            tail = [t for t in tail if t]
            res["error"] = f"exit {code}: " + (" / ".join(tail[-4:]) if tail else "no output")
            return res
        res["self_cpu_s"] = truth.get("self_cpu_s")
        if cfg.parse is None:
            return res
        if cfg.tool == "spprof":
            try:
                with open(out + ".counters.json") as f:
                    res["counters"] = json.load(f)
            except OSError:
                pass
        try:
            data = PARSERS[cfg.parse](out)
            res["metrics"] = metrics(workload, cfg, data, truth, cfg.interval_ms)
            res["output_bytes"] = os.path.getsize(out)
        except Exception as e:  # an output that cannot be read: its metrics are n/a
            res["parse_error"] = f"{type(e).__name__}: {e}"[:300]
        return res
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _wait(proc: subprocess.Popen, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return status, ru
        if time.monotonic() > deadline:
            proc.kill()
            _pid, _status, ru = os.wait4(proc.pid, 0)
            proc.returncode = -9
            return None, ru
        time.sleep(0.005)


def calibrate(timeout: float) -> dict:
    p = subprocess.run([ARGS_PY, WORKLOAD_SCRIPT, "--calibrate"], capture_output=True, text=True,
                       timeout=timeout, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def tool_versions() -> Dict[str, str]:
    code = ("import json, importlib.metadata as m\nout = {}\n"
            "for n in ('spprof','py-spy','pyinstrument','echion','austin-dist','scalene','yappi','austin-python',"
            "'pyroscope-io','ddtrace'):\n"
            "    try: out[n] = m.version(n)\n    except Exception: out[n] = None\nprint(json.dumps(out))")
    try:
        return json.loads(subprocess.run([ARGS_PY, "-c", code], capture_output=True, text=True, timeout=60).stdout)
    except (ValueError, subprocess.SubprocessError):
        return {}


def unavailable(cfg: Config) -> Optional[str]:
    """Why a config cannot run here, or None."""
    if cfg.tool == "none" or cfg.tool == "cProfile":
        return None
    if cfg.tool == "spprof":
        ok = subprocess.run([ARGS_PY, "-c", "import spprof._native"], capture_output=True, cwd=tempfile.gettempdir())
        return None if ok.returncode == 0 else "spprof not installed in the bench venv"
    exe = _bin(ARGS_PY, EXE[cfg.tool])
    if not os.path.exists(exe):
        return f"{cfg.tool} not installed"
    probe = [exe, "--help"] if cfg.tool != "scalene" else [exe, "--version"]
    p = subprocess.run(probe, capture_output=True, text=True, timeout=60)
    if p.returncode != 0 and "usage" not in (p.stdout + p.stderr).lower():
        return f"{cfg.tool} does not run: " + (p.stderr.strip().splitlines() or ["?"])[-1][:200]
    return None


# --------------------------------------------------------------- summaries

def spread(values: List[float]) -> Optional[dict]:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def summarize(cfg: Config, workload: str, runs: List[dict], base: List[dict]) -> dict:
    row: dict = {"workload": workload, "tool": cfg.tool, "config": cfg.label, "clock": cfg.clock,
                 "interval_ms": cfg.interval_ms, "out_of_process": cfg.out_of_process, "runs": runs}
    errors = [r["error"] for r in runs if "error" in r]
    if errors:
        row["errors"] = errors
    ok = [(r, b) for r, b in zip(runs, base) if "error" not in r and "error" not in b]
    if not ok:
        return row
    row["wall_ratio"] = spread([r["wall_s"] / b["wall_s"] for r, b in ok])
    row["cpu_ratio"] = spread([r["cpu_s"] / b["cpu_s"] for r, b in ok])
    row["wall_s"] = spread([r["wall_s"] for r, _ in ok])
    row["cpu_s"] = spread([r["cpu_s"] for r, _ in ok])
    if cfg.out_of_process:
        # the program's own CPU (measured by itself at exit) against the unprofiled program's;
        # the rest of the process tree's CPU is the profiler's, shown against the program's baseline
        row["program_cpu_ratio"] = spread([r["self_cpu_s"] / b["self_cpu_s"] for r, b in ok
                                           if r.get("self_cpu_s") and b.get("self_cpu_s")])
        row["profiler_cpu_pct"] = spread([100 * ((r["cpu_s"] - r["self_cpu_s"]) - (b["cpu_s"] - b["self_cpu_s"]))
                                          / b["cpu_s"] for r, b in ok if r.get("self_cpu_s") and b.get("self_cpu_s")])
    mets = [r.get("metrics") for r, _ in ok]
    parse_errors = [r["parse_error"] for r, _ in ok if "parse_error" in r]
    if parse_errors:
        row["parse_errors"] = parse_errors
    good = [m for m in mets if m]
    if good:
        row["error_pts"] = spread([m.get("error_pts") for m in good])
        row["leaf_reached_pct"] = spread([m.get("leaf_reached_pct") for m in good])
        if any("samples" in m for m in good):
            row["samples"] = statistics.median(m["samples"] for m in good if "samples" in m)
            row["expected"] = statistics.median(m["expected"] for m in good if "samples" in m)
        shares: Dict[str, List[float]] = {}
        for m in good:
            for k, v in m.get("share_pct", {}).items():
                shares.setdefault(k, []).append(v)
        row["share_pct"] = {k: statistics.median(v) for k, v in shares.items()}
        truths = [m["truth_pct"] for m in good if "truth_pct" in m]
        if truths:
            row["truth_pct"] = statistics.median(truths)
        infos = [m["info"] for m in good if "info" in m]
        if infos:
            row["info"] = {k: statistics.median(i[k] for i in infos) for k in infos[0]}
    spc = [r["counters"] for r, _ in ok if r.get("counters")]
    if spc:
        row["spprof_collected_samples"] = statistics.median(c.get("collected_samples", 0) for c in spc)
        row["spprof_own_cpu_pct"] = spread([100 * (c["sampler_cpu_ns"] + c["collector_cpu_ns"]) / c["process_cpu_ns"]
                                            for c in spc if c.get("process_cpu_ns")])
    return row


def _x(s: Optional[dict], digits: int = 2) -> str:
    return "n/a" if not s else f"{s['median']:.{digits}f}×"


def _xr(s: Optional[dict]) -> str:
    return "n/a" if not s else f"{s['median']:.2f}× ({s['min']:.2f}–{s['max']:.2f})"


def _status(row: dict) -> Optional[str]:
    if row.get("unavailable"):
        return row["unavailable"]
    if "wall_ratio" not in row:
        errs = row.get("errors") or ["no successful run"]
        return "failed: " + errs[0]
    return None


def accuracy_cell(row: dict) -> str:
    st = _status(row)
    if st:
        return "–"
    w = row["workload"]
    e = row.get("error_pts")
    if w == "c":
        info = row.get("info")
        return "n/a" if not info else f"({info['tiny_pct_of_caller']:.0f} % in tiny)"
    if e is None:
        return "n/a"
    if w == "a":
        return f"{e['median']:.1f}"
    if w == "b":
        s = row.get("share_pct", {})
        return f"{e['median']:.1f} ({'/'.join(f'{s[k]:.0f}' for k in sorted(s))})"
    if w == "d":
        return f"{row['leaf_reached_pct']['median']:.0f} %"
    s = next(iter(row.get("share_pct", {}).values()), None)
    return f"{e['median']:.1f} ({s:.0f} vs {row.get('truth_pct', 0):.0f})" if s is not None else "n/a"


def markdown(rows: List[dict], workloads: List[str], configs: List[Config]) -> str:
    by = {(r["workload"], r["tool"], r["config"]): r for r in rows}
    names = {"a": "a 70/30", "b": "b 4 thr", "c": "c tiny", "d": "d deep", "e": "e builtin", "f": "f sleep",
             "g": "g 100 thr", "h": "h paced"}
    out = ["### Overhead: wall-time ratio / process-CPU ratio to no profiler (medians)", "",
           "| profiler | config | " + " | ".join(names[w] for w in workloads) + " |",
           "|---|---|" + "---|" * len(workloads)]
    for c in configs:
        if c.tool == "none":
            cells = []
            for w in workloads:
                r = by.get((w, c.tool, c.label))
                cells.append("n/a" if not r or "wall_s" not in r else
                             f"{r['wall_s']['median']:.2f} s / {r['cpu_s']['median']:.2f} s")
            out.append("| none | (seconds) | " + " | ".join(cells) + " |")
            continue
        cells = []
        for w in workloads:
            r = by.get((w, c.tool, c.label))
            if r is None:
                cells.append("–")
            elif _status(r):
                cells.append(_status(r)[:40])
            else:
                cells.append(f"{_x(r['wall_ratio'])} / {_x(r['cpu_ratio'])}")
        out.append(f"| {c.tool} | {c.label} | " + " | ".join(cells) + " |")

    def median_table(title: str, rows: list, key: str, digits: int, with_tool: bool) -> List[str]:
        # one row a config, one column a workload: the median of `key`, as a percentage
        head = "| profiler | config | " if with_tool else "| config | "
        lines = ["", f"### {title}", "", head + " | ".join(names[w] for w in workloads) + " |",
                 "|---|" + ("---|" if with_tool else "") + "---|" * len(workloads)]
        for c in rows:
            cells = []
            for w in workloads:
                r = by.get((w, c.tool, c.label))
                p = r.get(key) if r else None
                cells.append("n/a" if not p else f"{p['median']:.{digits}f} %")
            lines.append((f"| {c.tool} | {c.label} | " if with_tool else f"| {c.label} | ") + " | ".join(cells) + " |")
        return lines

    oop = [c for c in configs if c.out_of_process]
    if oop:
        out += median_table("Out-of-process profilers: CPU of the profiler process, % of the unprofiled program's CPU"
                            " (median)", oop, "profiler_cpu_pct", 0, True)
    spc = [c for c in configs if c.tool == "spprof"]
    if spc:
        out += median_table("spprof: its sampler and collector threads' own CPU clocks, % of the process CPU"
                            " (median)", spc, "spprof_own_cpu_pct", 2, False)

    acc_w = [w for w in workloads if w != "c"]
    heads = {"a": "a: points off 70/30", "b": "b: max points off 10/20/30/40 (shares)",
             "d": "d: samples reaching the leaf", "e": "e: points off (builtin share vs truth)",
             "f": "f: points off (CPU-part share vs truth for the clock)",
             "g": "g: points off (busy share vs truth for the clock)",
             "h": "h: points off 50/50 (first half's share)"}
    out += ["", "### Accuracy (medians)", "",
            "| profiler | config | clock | " + " | ".join(heads[w] for w in acc_w)
            + (" | a: samples / expected |" if "a" in workloads else " |"),
            "|---|---|---|" + "---|" * len(acc_w) + ("---|" if "a" in workloads else "")]
    for c in configs:
        if c.tool == "none":
            continue
        cells = []
        for w in acc_w:
            r = by.get((w, c.tool, c.label))
            cells.append("–" if r is None else accuracy_cell(r))
        if "a" in workloads:
            r = by.get(("a", c.tool, c.label))
            if r and r.get("samples") is not None and r.get("expected"):
                cells.append(f"{r['samples']:.0f} / {r['expected']:.0f}")
            else:
                cells.append("n/a")
        out.append(f"| {c.tool} | {c.label} | {c.clock} | " + " | ".join(cells) + " |")

    out += ["", "### Every row, with min–max over rounds", "",
            "| workload | profiler | config | wall ratio (min–max) | CPU ratio (min–max) | program CPU ratio"
            " | profiler CPU % | accuracy | runs ok |",
            "|---|---|---|---|---|---|---|---|---|"]
    for w in workloads:
        for c in configs:
            r = by.get((w, c.tool, c.label))
            if r is None:
                continue
            st = _status(r)
            nruns = len(r.get("runs", []))
            nok = sum(1 for x in r.get("runs", []) if "error" not in x)
            if c.tool == "none":
                out.append(f"| {w} | none | | {r['wall_s']['median']:.3f} s | {r['cpu_s']['median']:.3f} s"
                           f" | | | | {nok}/{nruns} |" if "wall_s" in r else f"| {w} | none | | n/a | n/a | | | | 0/{nruns} |")
                continue
            if st:
                out.append(f"| {w} | {c.tool} | {c.label} | {st} | | | | | {nok}/{nruns} |")
                continue
            prog = _xr(r.get("program_cpu_ratio")) if c.out_of_process else "same"
            pc = r.get("profiler_cpu_pct")
            pcs = (f"{pc['median']:.0f} ({pc['min']:.0f}–{pc['max']:.0f})" if pc else "n/a") if c.out_of_process else "in-process"
            out.append(f"| {w} | {c.tool} | {c.label} | {_xr(r['wall_ratio'])} | {_xr(r['cpu_ratio'])} | {prog}"
                       f" | {pcs} | {accuracy_cell(r)} | {nok}/{nruns} |")
    return "\n".join(out)


# -------------------------------------------------------------------- main

def main() -> None:
    global ARGS_PY
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=1.2, help="CPU seconds of work in each workload (unprofiled)")
    ap.add_argument("--quick", action="store_true", help="1 round, 0.5 s workloads, a subset of configs")
    ap.add_argument("--only", default="", help=f"comma-separated tools: {','.join(TOOLS)}")
    ap.add_argument("--workloads", default="", help=f"comma-separated: {','.join(WORKLOADS)}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--python", default=None,
                    help=f"the bench venv's interpreter (default {DEFAULT_VENV}/bin/python, else this one)")
    ap.add_argument("--output", default=os.path.join(RESULTS, "compare.json"))
    args = ap.parse_args()
    venv_py = os.path.join(DEFAULT_VENV, "bin", "python")
    ARGS_PY = args.python or (venv_py if os.path.exists(venv_py) else sys.executable)
    if args.quick:
        args.rounds, args.seconds = 1, 0.5

    only = [t.strip() for t in args.only.split(",") if t.strip()]
    unknown = set(only) - set(TOOLS)
    if unknown:
        ap.error(f"unknown tool(s) {', '.join(sorted(unknown))}; known: {', '.join(TOOLS)}")
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()] or list(WORKLOADS)
    if set(workloads) - set(WORKLOADS):
        ap.error(f"unknown workload(s); known: {', '.join(WORKLOADS)}")
    configs = [c for c in CONFIGS if (c.tool == "none" or not only or c.tool in only)
               and (not args.quick or c.quick)]

    command = shlex.join([sys.executable, *sys.argv])
    timeout = 60 + 30 * args.seconds
    cal = calibrate(120)
    versions = tool_versions()
    machine = {"nproc": len(os.sched_getaffinity(0)), "cpu": cpu_model(), "kernel": platform.release(),
               "python": cal["python"], "interpreter": ARGS_PY, "command": command}
    print(f"Machine: nproc={machine['nproc']}, CPU: {machine['cpu']}, Python {cal['python']} ({ARGS_PY})")
    print(f"Command: {command}")
    print("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v))
    print(f"Rounds: {args.rounds}, {args.seconds} s per workload, seed {args.seed}; calibration {json.dumps(cal)}\n",
          flush=True)

    skip: Dict[str, str] = {}
    for c in configs:
        why = unavailable(c)
        if why:
            skip[c.key] = why
            print(f"  skipping {c.key}: {why}", file=sys.stderr)
    cells = [(w, c) for w in workloads for c in configs if c.key not in skip]
    runs: Dict[Tuple[str, str], List[dict]] = {(w, c.key): [] for w, c in cells}
    rng = random.Random(args.seed)
    started = time.monotonic()
    for n in range(args.rounds):
        order = cells[:]
        rng.shuffle(order)
        for i, (w, c) in enumerate(order):
            r = run_one(c, w, args.seconds, cal, timeout)
            runs[(w, c.key)].append(r)
            if "error" in r or "parse_error" in r:
                print(f"  [{w}] {c.key}: {r.get('error') or r.get('parse_error')}", file=sys.stderr)
        print(f"  round {n + 1}/{args.rounds} done ({time.monotonic() - started:.0f} s)", file=sys.stderr,
              flush=True)

    rows = []
    for w in workloads:
        base = runs.get((w, "none"), [])
        for c in configs:
            if c.key in skip:
                rows.append({"workload": w, "tool": c.tool, "config": c.label, "clock": c.clock,
                             "unavailable": skip[c.key]})
                continue
            if c.tool == "none":
                ok = [r for r in base if "error" not in r]
                rows.append({"workload": w, "tool": "none", "config": "", "runs": base,
                             **({"wall_s": spread([r["wall_s"] for r in ok]), "cpu_s": spread([r["cpu_s"] for r in ok])}
                                if ok else {})})
                continue
            rows.append(summarize(c, w, runs[(w, c.key)], base))

    table = markdown(rows, workloads, configs)
    header = (f"Measured with `{os.path.relpath(sys.argv[0]) if sys.argv[0] else 'bench/compare.py'} "
              f"{' '.join(shlex.quote(a) for a in sys.argv[1:])}` on {machine['nproc']} CPUs ({machine['cpu']}),"
              f" Python {cal['python']}, {args.rounds} round(s) of {args.seconds} s workloads; "
              + ", ".join(f"{k} {v}" for k, v in versions.items() if v) + ".\n")
    print(header)
    print(table)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"machine": machine, "versions": versions, "calibration": cal, "rounds": args.rounds,
                   "seconds": args.seconds, "seed": args.seed, "skipped": skip, "rows": rows}, f, indent=1)
    md = os.path.splitext(args.output)[0] + ".md"
    with open(md, "w") as f:
        f.write(header + "\n" + table + "\n")
    print(f"\nWrote {args.output} and {md} ({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
