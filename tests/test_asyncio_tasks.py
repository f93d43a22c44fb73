"""asyncio tasks named on the samples of the threads that run them (issue 14). Workloads in
tests/workloads/async_tasks.py."""
import json
import subprocess
import sys

import pytest

import spprof
from conftest import run_workload
from test_formats import decode_pprof, go_pprof




def run(kind, interval_ms, mode, seconds, *extra):
    proc, out = run_workload("async_tasks", kind, interval_ms, mode, seconds, *extra, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_tasks_are_named_on_this_interpreter_once_asyncio_is_imported(tmp_path):
    code = ("import spprof, sys\n"
            "spprof.start(); off = spprof.stats().tasks_off; spprof.stop()\n"
            "assert 'asyncio' not in sys.modules, 'spprof imported asyncio'\n"
            "import asyncio\n"
            "spprof.start(); print(repr((off, spprof.stats().tasks_off))); spprof.stop()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)  # not the checkout, whose spprof/ has no built module
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == repr(("asyncio was not imported when profiling started", "")), proc.stdout


@pytest.mark.parametrize("kind", ["three", "subclass", "eager", "uvloop"])
def test_the_computing_task_is_named_above_its_coroutines_and_waiting_tasks_have_no_cpu(kind):
    if kind == "eager" and sys.version_info < (3, 12):
        pytest.skip("eager tasks are 3.12+")
    if kind == "uvloop":
        pytest.importorskip("uvloop", reason="uvloop has no build for this interpreter")
    for attempt in range(3):
        out = run(kind, 2, "cpu", 2.0)
        computing = out["computer"]
        total = sum(computing.values())
        under = sum(w for k, w in computing.items() if k.startswith("computer>a_top>b_mid"))
        if under >= 0.95 * total or attempt == 2:
            break
    assert total > 0, out
    assert under >= 0.95 * total, (computing, out["counters"])
    assert out["runs"]["computer"] == ["a_top"], out["runs"]
    # The main task (asyncio.run's three, or uvloop.run's wrapper around it) and the waiters
    # compute for a few microseconds, to start and to end: a loaded machine can catch one there,
    # under its own coroutine, but a waiter is never charged for the time it waits.
    main = "wrapper" if kind == "uvloop" else "three"
    own = {"waiter-sleep": "waiter_sleep", "waiter-event": "waiter_event"}
    assert set(out["under_task"]) <= {"a_top", main, *own.values()}, out["runs"]
    for task, coroutine in own.items():
        assert out["runs"].get(task, [coroutine]) == [coroutine], out["runs"]
        assert out["by_task"].get(task, 0) <= 0.02 * total, out["by_task"]
    assert out["counters"]["tasks_named"] > 0


@pytest.mark.parametrize("mode", ["cpu", "wall"])
def test_the_tasks_awaiting_a_task_are_above_it(mode):
    """In wall mode the children's samples where they wait, and the parents', have them too."""
    out = run("parents", 2, mode, 2.0)
    parent = {"gathered": "gather-parent", "awaited": "await-parent", "shielded": "shield-parent",
              "waited": "wait-parent", "timed": "wait-for-parent"}
    if sys.version_info >= (3, 11):
        parent["grouped"] = "group-parent"
    for child, above in parent.items():
        chains = {c: w for c, w in out["chains"].items() if c.rsplit(">", 1)[-1].startswith(child + "-")}
        total = sum(chains.values())
        assert total > 0, out["chains"]
        # the parent, itself awaited by asyncio.run's task through the outer gather
        under = sum(w for c, w in chains.items() if c.split(">")[-2:-1] == [above] and len(c.split(">")) == 3)
        assert under >= 0.95 * total, (child, chains, out["counters"])
        if child == "grouped":
            # a group whose task is awaited directly: the group's task and its awaiter above,
            # never the awaiter of the group's task alone
            inner = {c: w for c, w in out["chains"].items() if c.rsplit(">", 1)[-1].startswith("inner-grouped-")}
            whole = sum(w for c, w in inner.items() if c.split(">")[:-1] == ["Task-1", "group-outer", "group-inner"])
            assert whole >= 0.95 * sum(inner.values()) > 0, inner
        if mode == "wall":  # each parent waits, gathered by asyncio.run's task
            waits = {c: w for c, w in out["chains"].items() if c.rsplit(">", 1)[-1] == above}
            assert sum(w for c, w in waits.items() if c.split(">")[:-1] == ["Task-1"]) >= 0.95 * sum(waits.values()) > 0, waits
    assert out["counters"]["task_parents_named"] > 0, out["counters"]


def test_suspended_tasks_are_sampled_where_they_wait_in_wall_mode():
    out = run("waits", 5, "wall", 2.0)
    waiting, counters = out["waiting"], out["counters"]
    lines = out["await_lines"]
    # each at its await line, then what it awaits down to the innermost coroutine or generator
    # (waiter-legacy: a generator-based coroutine, then the generator it yields from)
    for name, coroutine, awaits in (("waiter-sleep", "timed_sleep", "sleep"), ("waiter-event", "timed_event", "wait"),
                                    ("waiter-legacy", "timed_legacy", "inner_wait")):
        chains = {c: w for c, w in waiting.items() if c.startswith(name + ">")}
        total = sum(chains.values())
        assert total > 0, (name, waiting, counters)
        at_await = sum(w for c, w in chains.items()
                       if c.split(">")[1:3] and c.split(">")[1] == f"{coroutine}:{lines[coroutine]}"
                       and c.split(">")[-1].split(":")[0] == awaits)
        assert at_await >= 0.95 * total, (name, chains)
        share = total / 1e9 / out["duration"]
        really = out["awaited"][name] / out["duration"]
        assert abs(share - really) <= 0.05, (name, share, really, counters)
    # It computes, suspended only for the moments of its sleep(0): a tick may land in one. On a
    # busy machine those moments can be long (its own clock around the await says how long), and
    # a late tick's weight goes to what it finds, so this bound is one-sided.
    computer = sum(w for c, w in waiting.items() if c.split(">")[0] == "computer") / 1e9
    assert computer <= out["awaited"]["computer"] + 0.02 * out["duration"], (out["awaited"], waiting)
    assert counters["waiting_tasks_sampled"] > 0 and counters["waiting_tasks_left_out"] == 0, counters
    # read at one tick in four (each read weighs the time since the last), so a task that waits
    # throughout is read a quarter as often as its thread
    for name in ("waiter-sleep", "waiter-event", "waiter-legacy"):
        assert 0 < out["waiting_reads"][name] <= counters["ticks"] / 4 + 1, (name, out["waiting_reads"], counters["ticks"])


def test_a_suspended_tasks_parent_renamed_meanwhile_is_named_anew_above_it():
    out = run("renamed", 5, "wall", 2.0)
    above = {}
    for c, w in out["chains"].items():
        tasks = c.split(">")
        if tasks[-1].startswith("kid-"):
            parent = tasks[-2] if len(tasks) > 1 else ""
            above[parent] = above.get(parent, 0) + w
    total = sum(above.values())
    assert total > 0, out["chains"]
    # A child read between its create_task() and the gather that takes it in is awaited by no
    # task yet, and its first read carries its time since the start (3.9 beside another suite:
    # 0.6 % of the children's weight): true, and small.
    assert set(above) - {""} <= {"old-parent", "new-parent"}, above
    assert above.get("", 0) <= 0.05 * total, above
    # renamed halfway: each name above the children for about half the run
    for name in ("old-parent", "new-parent"):
        assert above.get(name, 0) >= 0.3 * total, (above, out["counters"])


# The tail of a program run by run_program(): the profile's samples of suspended tasks (they
# start at a task's frame, with no event loop below).
SUSPENDED = ("profile = spprof.stop()\n"
             "suspended = [s for s in profile.samples if s.frames[0].filename == '<asyncio task>']\n")


def run_program(code, cwd):
    """Runs `code` in a fresh interpreter; what it printed, read as JSON."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_each_suspended_task_is_sampled_on_the_thread_that_runs_its_loop(tmp_path):
    code = ("import asyncio, json, threading, spprof\n"
            "async def wait_here(event):\n"
            "    await event.wait()\n"
            "async def main(tag):\n"
            "    event = asyncio.Event()\n"
            "    waiter = asyncio.create_task(wait_here(event), name='waiter-' + tag)\n"
            "    await asyncio.sleep(1.0)\n"
            "    event.set()\n"
            "    await waiter\n"
            "spprof.start(interval_ms=5, mode='wall')\n"
            "threads = [threading.Thread(target=asyncio.run, args=(main(tag),), name='loop-' + tag) for tag in 'ab']\n"
            "for t in threads: t.start()\n"
            "for t in threads: t.join()\n" + SUSPENDED +
            "seen = {}\n"
            "for s in suspended:\n"
            "    if s.task_name.startswith('waiter-'):\n"
            "        seen.setdefault(s.task_name, set()).add(s.thread_name)\n"
            "print(json.dumps({name: sorted(threads) for name, threads in seen.items()}))\n")
    seen = run_program(code, tmp_path)
    assert seen == {"waiter-a": ["loop-a"], "waiter-b": ["loop-b"]}, seen


def test_a_task_suspended_in_sleep_0_is_sampled_there(tmp_path):
    # asyncio.sleep(0) awaits a generator stopped at a plain `yield`, its value stack empty: the
    # task waits there while another one holds the loop (here in time.sleep)
    code = ("import asyncio, json, time, spprof\n"
            "async def yields_once():\n"
            "    await asyncio.sleep(0)\n"
            "async def hog():\n"
            "    time.sleep(1.0)\n"
            "async def main():\n"
            "    waiter = asyncio.create_task(yields_once(), name='yielder')\n"
            "    hogger = asyncio.create_task(hog(), name='hog')\n"
            "    await asyncio.gather(waiter, hogger)\n"
            "spprof.start(interval_ms=5, mode='wall')\n"
            "asyncio.run(main())\n" + SUSPENDED +
            "chains = {}\n"
            "for s in suspended:\n"
            "    if s.task_name == 'yielder':\n"
            "        key = '>'.join(f.function_name.split('.')[-1] for f in s.frames if f.filename != '<asyncio task>')\n"
            "        chains[key] = chains.get(key, 0) + s.weight_ns\n"
            "print(json.dumps({'chains': chains, 'counters': profile.counters}))\n")
    out = run_program(code, tmp_path)
    at_sleep = sum(w for c, w in out["chains"].items() if c.split(">")[:2] == ["yields_once", "sleep"])
    assert at_sleep >= 0.5e9, out


def test_waiting_tasks_get_no_samples_in_cpu_mode():
    out = run("waits", 5, "cpu", 1.0)
    assert out["waiting"] == {} and out["counters"]["waiting_tasks_sampled"] == 0, out["waiting"]


def test_ten_thousand_suspended_tasks_are_read_in_turns_and_counted():
    out = run("many", 2, "wall", 2.0)  # 1000 ticks: a pass and a half over the list
    counters, waiting = out["counters"], out["waiting"]
    assert counters["ticks"] >= 20, counters  # the ticks keep coming
    assert counters["waiting_tasks_left_out"] > 0 and counters["waiting_tasks_sampled"] > 0, counters
    # the computing task awaits sleep(0) between its steps: a turn can find it suspended there
    assert all(c.startswith("computer>a_top:") for c in waiting if c.startswith("computer>")), waiting
    names = {c.split(">")[0] for c in waiting} - {"many-main", "computer"}
    assert names and all(n.startswith("sleeper-") for n in names), sorted(names)[:10]
    # read in turns: more tasks are sampled than one tick reads, each weighted for its turn
    assert len(names) > 16 * 20, len(names)
    # A read carries the time since the task's place was last read (in the first pass, since the
    # start): a task's weight is the time of its last read, and a place is read once a pass. Read
    # at an even pace, S reads of N places over D seconds (a pass P = D * N / S) leave each task
    # D - P / 2 on average (S >= N), or D / 2 for the S / N of them read once (S < N). How many
    # passes fit in D is the machine's (1000 ticks a pass and a half; fewer under ASan). D is the
    # time until the sleepers were cancelled: after it they end, one by one, and are read no more
    # (a phase that ASan's allocator makes long enough to matter).
    duration, places = out["duration"], 10_002  # the sleepers, many-main and computer
    lived = out["sleepers_s"]
    reads = counters["waiting_tasks_sampled"]
    expected = lived - lived * places / reads / 2 if reads >= places else reads / places * lived / 2
    each = sum(w for c, w in waiting.items() if c.startswith("sleeper-")) / 1e9 / 10_000
    assert 0.8 * expected <= each <= 1.2 * duration, (each, expected, duration, counters)


@pytest.mark.parametrize("mode", ["cpu", "wall"])  # wall: suspended tasks are read too, as they come and go
def test_torture_names_only_the_workloads_tasks(mode):
    out = run("torture", 1, mode, 4.0)
    named = {name for name in out["by_task"] if name}
    assert named, out["counters"]
    if mode == "wall":
        assert out["counters"]["waiting_tasks_sampled"] > 0, out["counters"]
    # asyncio.run makes tasks of its own as it closes the loop, which the workload cannot note
    closing = {"shutdown_asyncgens", "shutdown_default_executor"}
    unknown = {name: out["runs"][name] for name in named - set(out["made"])}
    misnamed = {name: ran for name, ran in unknown.items() if not set(ran) <= closing}
    assert not misnamed, misnamed
    # a task's frame stands right above the coroutine the task runs, never anywhere else
    assert set(out["under_task"]) <= {"short_work", "long_wait", "one_run"} | closing, out["under_task"]
    # each sample's task id is the id() of a task of that name the workload made
    made = {(name, task_id) for name, task_id in out["made_ids"]}
    seen = {(name, int(task_id)) for name, ids in out["task_ids"].items() if name in out["made"] for task_id in ids}
    assert seen and seen <= made, sorted(seen - made)[:10]
    assert "0" not in {task_id for name, ids in out["task_ids"].items() if name for task_id in ids}
    assert set(out["task_ids"].get("", {})) <= {"0"}, out["task_ids"][""]


@pytest.mark.parametrize("mode", ["cpu", "wall"])
def test_two_tasks_of_one_name_keep_their_own_ids(mode):
    out = run("twins", 2, mode, 2.0)
    twins = out["task_ids"]["twin"]
    made = {task_id for name, task_id in out["made_ids"] if name == "twin"}
    assert len(made) == 2
    assert {int(task_id) for task_id in twins} == made, (twins, made)
    # they compute in turns: each has a fair part of the twins' time
    total = sum(twins.values())
    assert all(w >= 0.25 * total for w in twins.values()), twins


def test_every_format_carries_the_task(tmp_path):
    out = run("three", 5, "cpu", 1.0, tmp_path)
    assert out["by_task"].get("computer", 0) > 0
    collapsed = (tmp_path / "profile.txt").read_text()
    assert any(";computer (<asyncio task>:0);a_top" in line for line in collapsed.splitlines()), collapsed[:2000]
    speedscope = json.loads((tmp_path / "profile.json").read_text())
    assert any(f["name"] == "computer" for f in speedscope["shared"]["frames"])
    pprof = decode_pprof(tmp_path / "profile.pb.gz")
    assert any(labels.get("task") == "computer" for _, _, labels in pprof["samples"])
    computer_ids = {int(i) for i in out["task_ids"]["computer"]}
    assert {labels.get("task_id") for _, _, labels in pprof["samples"] if labels.get("task") == "computer"} == computer_ids
    tags = go_pprof("-tags", tmp_path / "profile.pb.gz")  # the real tool reads the label
    assert "task:" in tags and "computer" in tags, tags
    assert "computer" in (tmp_path / "profile.trace.json").read_text()
    assert "computer" in (tmp_path / "profile.html").read_text()


def test_report_tasks_gives_a_table_per_task(tmp_path):
    run("three", 5, "cpu", 1.0, tmp_path)
    proc = subprocess.run([sys.executable, "-m", "spprof", "report", str(tmp_path / "profile.json"), "--tasks", "-n", "0"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    assert rows[0][0] == "task"
    computer = {r[-2].split(".")[-1] for r in rows[1:] if r[0] == "computer"}
    assert {"a_top", "b_mid", "c_work"} <= computer, rows
    # The main task (asyncio.run's three) computes for a few microseconds, starting the others: a
    # loaded machine can catch it. The waiting tasks use no CPU and get no table.
    assert {r[0] for r in rows[1:]} <= {"computer", "(no task)", "Task-1"}, {r[0] for r in rows[1:]}
    # the task's table comes first: it has nearly all the time
    assert rows[1][0] == "computer"
