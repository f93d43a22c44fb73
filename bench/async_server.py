"""An asyncio server under the profilers: 1000 connection tasks that each wait on a simulated
database (`asyncio.sleep` of 50-150 ms) and then parse a reply (about 30 µs of Python), and three
tasks that compute in 1 ms bursts; about half a CPU in all, so a profiler's cost shows in the
process's CPU rather than in work left undone.

    bash bench/compare_setup.sh    # once: the venv with echion and pyinstrument
    ~/.cache/spprof/compare-venv/bin/python bench/async_server.py --rounds 5 --seconds 5

Each configuration runs in a fresh process, shuffled in each round: bare; spprof at 10 ms in cpu
mode with tasks named (asyncio imported before start()), in cpu mode without (asyncio imported
after start(), so `stats().tasks_off` is set: the plain cpu mode on the same program), and in wall
mode; echion at 10 ms in wall mode and with `-c` (on-CPU only); pyinstrument's async mode
(`Profiler(async_mode="enabled")` around the server, 10 ms); and the in-process agents
pyroscope-io (100 Hz, pushing to a receiver of Pyroscope's API in this process) and ddtrace's
profiler (its defaults, writing pprof locally), started as bench/continuous.py starts them. Reports the CPU of the whole process
tree (os.wait4) against the same round's bare run, median (min-max); spprof's sampler CPU per
tick; and the profiler's own threads' share of the process's CPU, read inside the process (spprof's
as it counts them, an agent's as every thread but the main one).
Writes bench/results/async_server.json. It asserts nothing.

    python bench/async_server.py --per-tick PY [PY ...] --rounds 6

compares spprof builds or interpreters instead (each PY an interpreter with spprof installed, for
example two venvs holding two commits): the same server under spprof's cpu and wall modes in
each, the runs alternated, and prints spprof's sampler CPU per tick and its threads' share of the
process's CPU, median (each run), wall mode's extra cost over cpu mode in the same interpreter, and
the sampler's reads of the process's memory a tick (median).
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # also when run by a profiler's launcher
from _machine import cpu_model, nproc, other_threads_cpu_s  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "async_server.json")
CONNECTIONS, COMPUTING = 1000, 3
IN_PROCESS = ("none", "spprof-cpu", "spprof-cpu-plain", "spprof-wall", "pyinstrument-async")
# The in-process agents a fleet runs (bench/continuous.py starts them the same way); skipped when
# not installed beside the interpreter. pyroscope-io pushes to a receiver in this process.
AGENTS = ("pyroscope-io", "ddtrace")
PUSH_URL = "SPPROF_BENCH_PUSH_URL"


def parse_reply(rng):
    fields = {}
    for k in range(60):
        fields[f"f{k}"] = rng.random() * k
    return sum(fields.values())


def crunch():
    total = 0
    for i in range(25_000):
        total += i & 7
    return total


async def connection(i, until):
    import asyncio
    loop = asyncio.get_running_loop()
    rng = random.Random(i)
    while loop.time() < until:
        await asyncio.sleep(rng.uniform(0.05, 0.15))  # the database
        parse_reply(rng)


async def computing(until):
    import asyncio
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        crunch()
        await asyncio.sleep(0.02)


async def server(seconds):
    import asyncio
    until = asyncio.get_running_loop().time() + seconds
    tasks = [asyncio.create_task(connection(i, until), name=f"conn-{i}") for i in range(CONNECTIONS)]
    tasks += [asyncio.create_task(computing(until), name=f"compute-{i}") for i in range(COMPUTING)]
    await asyncio.gather(*tasks)


def workload(seconds, profiler, out):
    """The program every configuration runs; `profiler` is the one started inside it."""
    if profiler == "spprof-cpu-plain":
        import spprof
        spprof.start(interval_ms=10, mode="cpu")  # before asyncio is imported: tasks are not named
    if profiler in AGENTS:
        import continuous
        os.environ.update(continuous.agent_env(profiler, os.path.dirname(out)))
        start, stop = continuous.PROFILERS[profiler]
        names = {"url": os.environ[PUSH_URL]}
        exec(start, names)
        import asyncio
        asyncio.run(server(seconds))
        own = other_threads_cpu_s()
        exec(stop, names)
        with open(out + ".stats.json", "w") as f:
            json.dump({"own_cpu_s": own, "process_cpu_s": time.process_time()}, f)
        return
    import asyncio
    if profiler in ("spprof-cpu", "spprof-wall"):
        import spprof
        spprof.start(interval_ms=10, mode=profiler.split("-")[1])
    if profiler == "pyinstrument-async":
        from pyinstrument import Profiler

        async def profiled():
            with Profiler(interval=0.01, async_mode="enabled") as p:
                await server(seconds)
            with open(out, "w") as f:
                f.write(p.output_text())
        asyncio.run(profiled())
        return
    asyncio.run(server(seconds))
    if profiler.startswith("spprof"):
        import spprof
        s = spprof._native.stats()
        p = spprof.stop()
        p.save(out, format="speedscope")
        with open(out + ".stats.json", "w") as f:
            json.dump({"ticks": s["ticks"], "reads": s["reads"], "sampler_cpu_ns": s["sampler_cpu_ns"],
                       "collector_cpu_ns": s["collector_cpu_ns"], "process_cpu_ns": s["process_cpu_ns"],
                       "tasks_named": p.counters.get("tasks_named", 0), "tasks_off": s["tasks_off"]}, f)


def configs(compare):
    here = os.path.abspath(__file__)

    def in_process(name):
        return compare.Config(name, "", None, 10, lambda py, w, a, out: [py, here, "--workload", a[0], name, out], None)

    def echion(cpu):
        return compare.Config("echion", "cpu 10 ms" if cpu else "wall 10 ms", None, 10,
                              lambda py, w, a, out: [compare._bin(py, "echion"), "-i", "10000", *(["-c"] if cpu else []),
                                                     "-o", out, py, here, "--workload", a[0], "none", out + ".unused"],
                              None)
    return [in_process(n) for n in IN_PROCESS + AGENTS] + [echion(False), echion(True)]


def sampler_us_per_tick(stats):
    return stats["sampler_cpu_ns"] / max(stats["ticks"], 1) / 1e3


def own_share_pct(stats):
    """The profiler's own threads' CPU as a share of the process's: spprof's two, as it counts them;
    an agent's, every thread but the main one (the server has no other)."""
    if "own_cpu_s" in stats:
        return 100 * stats["own_cpu_s"] / max(stats["process_cpu_s"], 1e-9)
    return 100 * (stats["sampler_cpu_ns"] + stats["collector_cpu_ns"]) / max(stats["process_cpu_ns"], 1)


def compare_builds(pythons, rounds, seconds):
    import statistics
    print(f"Machine: nproc={nproc()}, CPU: {cpu_model()}")
    print(f"Command: {' '.join([os.path.relpath(sys.executable)] + sys.argv)}")
    runs = [(py, mode) for py in pythons for mode in ("spprof-cpu", "spprof-wall")]
    got = {r: [] for r in runs}
    for r in range(rounds):
        for py, mode in (runs if r % 2 == 0 else runs[::-1]):
            tmp = tempfile.mkdtemp(prefix="spprof-async-")
            try:
                out = os.path.join(tmp, "profile.out")
                subprocess.run([py, os.path.abspath(__file__), "--workload", str(seconds), mode, out], cwd=tmp,
                               check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL, timeout=120 + 10 * seconds)
                with open(out + ".stats.json") as f:
                    s = json.load(f)
                got[(py, mode)].append((sampler_us_per_tick(s), own_share_pct(s), s["reads"] / max(s["ticks"], 1)))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        print(f"  round {r + 1} of {rounds} done", file=sys.stderr, flush=True)
    print(f"\n{rounds} alternated runs each, {seconds:g} s, spprof at 10 ms; median (each run):\n")
    print("| interpreter | mode | sampler CPU per tick | spprof's threads / process CPU | wall's extra per tick | reads a tick |")
    print("|---|---|---|---|---|---|")
    for py in pythons:
        cpu = statistics.median(t for t, _, _ in got[(py, "spprof-cpu")])
        for mode in ("spprof-cpu", "spprof-wall"):
            ticks = [t for t, _, _ in got[(py, mode)]]
            tick = statistics.median(ticks)
            share = statistics.median(x for _, x, _ in got[(py, mode)])
            reads = statistics.median(r for _, _, r in got[(py, mode)])
            extra = f"{tick - cpu:.1f} µs" if mode == "spprof-wall" else ""
            print(f"| {py} | {mode.split('-')[1]} | {tick:.1f} µs ({', '.join(f'{t:.0f}' for t in ticks)}) | {share:.2f} % | {extra} | {reads:.1f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0, help="the shuffle's seed")
    ap.add_argument("--python", default=None, help="the venv's interpreter (default: compare.py's venv)")
    ap.add_argument("--per-tick", nargs="+", metavar="PY", help="compare spprof in these interpreters")
    ap.add_argument("--only", nargs="+", metavar="CONFIG", help="run only these configurations (the bare run always)")
    ap.add_argument("--workload", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.workload:
        seconds, profiler, out = args.workload
        return workload(float(seconds), profiler, out)
    if args.per_tick:
        return compare_builds(args.per_tick, args.rounds, args.seconds)
    import compare  # bench/compare.py: the process tree's CPU, the venv, spreads
    py = args.python or os.path.join(compare.DEFAULT_VENV, "bin", "python")
    if not os.path.exists(py):
        py = sys.executable
    compare.ARGS_PY = py
    versions = compare.tool_versions()
    runnable = []
    for c in configs(compare):
        if args.only and c.key != "none" and c.key not in args.only and c.tool not in args.only:
            continue
        if c.tool == "echion" and not os.path.exists(compare._bin(py, "echion")):
            print(f"Skipped {c.key}: echion is not installed beside {py}")
        elif c.tool in AGENTS and not versions.get(c.tool):
            print(f"Skipped {c.key}: not installed beside {py}")
        else:
            runnable.append(c)
    print(f"Machine: nproc={nproc()}, CPU: {cpu_model()}, interpreter {py}")
    print(f"Command: {' '.join([os.path.relpath(sys.executable)] + sys.argv)}")
    print("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v and k in ("spprof", "echion", "pyinstrument", *AGENTS)))
    receiver = None
    if any(c.tool == "pyroscope-io" for c in runnable):
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
        from pyroscope_receiver import Receiver
        receiver = Receiver()
        os.environ[PUSH_URL] = receiver.url
    rng = random.Random(args.seed)
    cpu = {c.key: [] for c in runnable}
    own = {c.key: [] for c in runnable}
    for r in range(args.rounds):
        order = list(runnable)
        rng.shuffle(order)
        for c in order:
            tmp = tempfile.mkdtemp(prefix="spprof-async-")
            try:
                out = os.path.join(tmp, "profile.out")
                with open(os.path.join(tmp, "stderr"), "wb") as se:
                    proc = subprocess.Popen(c.argv(py, "", [str(args.seconds)], out), stdout=subprocess.DEVNULL,
                                            stderr=se, stdin=subprocess.DEVNULL, cwd=tmp)
                    status, ru = compare._wait(proc, 120 + 10 * args.seconds)
                if status is None or os.waitstatus_to_exitcode(status) != 0:
                    with open(os.path.join(tmp, "stderr"), errors="replace") as f:
                        print(f"  round {r + 1}, {c.key}: failed: {f.read()[-300:]!r}", file=sys.stderr)
                    cpu[c.key].append(None)
                    continue
                cpu[c.key].append(ru.ru_utime + ru.ru_stime)
                if os.path.exists(out + ".stats.json"):
                    with open(out + ".stats.json") as f:
                        own[c.key].append(json.load(f))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        print(f"  round {r + 1} of {args.rounds} done", file=sys.stderr, flush=True)
    if receiver:
        receiver.close()
    base = cpu["none"]
    print(f"\n{CONNECTIONS} connection tasks and {COMPUTING} computing ones, {args.seconds:g} s, "
          f"{args.rounds} interleaved rounds; process-tree CPU against the bare run, median (min–max); "
          "spprof's sampler per tick; the profiler's own threads' share of the process's CPU, median:\n")
    print("| profiler | process CPU × | sampler CPU per tick | profiler's threads / process CPU | tasks named |")
    print("|---|---|---|---|---|")
    rows = []
    for c in runnable:
        if c.key == "none":
            continue
        s = compare.spread([x / b for x, b in zip(cpu[c.key], base) if x and b])
        row = {"profiler": c.key, "cpu_ratio": s}
        tick = share = named = "n/a"
        if own[c.key]:
            per_tick = sorted(sampler_us_per_tick(o) for o in own[c.key] if "ticks" in o)
            shares = sorted(own_share_pct(o) for o in own[c.key])
            row.update(sampler_us_per_tick=per_tick, own_share_pct=shares, stats=own[c.key])
            tick = f"{per_tick[len(per_tick) // 2]:.1f} µs" if per_tick else ""
            share = f"{shares[len(shares) // 2]:.2f} %"
            if c.tool in AGENTS:
                named = ""
            else:
                named = "yes" if all(o["tasks_named"] for o in own[c.key]) else ("no: " + own[c.key][0]["tasks_off"])
        rows.append(row)
        ratio = "n/a" if not s else f"{s['median']:.3f}× ({s['min']:.3f}–{s['max']:.3f})"
        print(f"| {c.key} | {ratio} | {tick} | {share} | {named} |")
    bs = compare.spread(base)
    print(f"\nBare run: {bs['median']:.2f} s of CPU (median)" if bs else "\nBare run: failed")
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump({"seconds": args.seconds, "rounds": args.rounds, "versions": versions, "rows": rows,
                   "raw_cpu_s": cpu}, f)


if __name__ == "__main__":
    main()
