"""asyncio tasks under the sampler.

Usage: async_tasks.py KIND INTERVAL_MS MODE SECONDS [OUTPUT_DIR]
KIND: three (one task computing through a_top > b_mid > c_work, two waiting on asyncio.sleep and
an Event), subclass (the same, with every task made by a task factory as a subclass of
asyncio.Task, as frameworks and tracing libraries do), eager (the same with 3.12's eager task
factory: a task starts running inside create_task), uvloop (the same on uvloop's event loop),
parents (tasks computing under a parent
that awaits them through gather, a TaskGroup (3.11+), `await task`, shield, wait or wait_for), waits (one
task computing, one awaiting asyncio.sleep for half the run, one awaiting an Event set at three
quarters, one awaiting a future through a generator-based coroutine and a plain generator's
`yield from`, resolved then too: each waiter's time spent awaiting is measured), many (10 000 tasks suspended in
asyncio.sleep beside one that computes), twins (two tasks of one name computing in turns), torture (event loops in four threads and the main one, each running asyncio.run over
and over; each run creates and cancels tasks by the hundred, some named, some raising).
Prints one JSON line: each task name with the weight of its samples, the leaf functions of the
computing task's samples, every task name the workload gave or asyncio made, what each named
task ran, the counters.
With OUTPUT_DIR, the profile is saved there in every format.
"""
import asyncio
import json
import os
import sys
import threading
import time
import types

import spprof

KIND, INTERVAL, MODE, SECONDS = sys.argv[1], float(sys.argv[2]), sys.argv[3], float(sys.argv[4])
OUTPUT = sys.argv[5] if len(sys.argv) > 5 else None
made_names = set()
made_ids = set()  # (name, id()) of each task the workload noted
names_lock = threading.Lock()
awaited = {}  # each waiter's seconds spent awaiting, and each computing task's in its sleep(0)
await_lines = {}  # waits: the line of each waiter's await


def c_work():
    total = 0
    for i in range(20_000):
        total += i & 7
    return total


async def b_mid():
    return c_work()


async def a_top(until):
    loop = asyncio.get_running_loop()
    name = asyncio.current_task().get_name()
    while loop.time() < until:
        await b_mid()
        start = time.monotonic()
        await asyncio.sleep(0)
        awaited[name] = awaited.get(name, 0) + time.monotonic() - start


async def waiter_sleep():
    await asyncio.sleep(3600)


async def waiter_event(event):
    await event.wait()


class RequestTask(asyncio.Task):
    pass


async def three():
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    if KIND == "subclass":
        loop.set_task_factory(lambda loop, coro, **kw: RequestTask(coro, loop=loop, **kw))
    elif KIND == "eager":
        loop.set_task_factory(asyncio.eager_task_factory)
    sleeper = asyncio.create_task(waiter_sleep(), name="waiter-sleep")
    eventer = asyncio.create_task(waiter_event(event), name="waiter-event")
    computer = asyncio.create_task(a_top(loop.time() + SECONDS), name="computer")
    assert KIND != "subclass" or type(computer) is RequestTask
    await computer
    sleeper.cancel()
    event.set()
    await asyncio.gather(sleeper, eventer, return_exceptions=True)


async def child_work(until):
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        c_work()
        await asyncio.sleep(0)


async def by_gather(until):
    await asyncio.gather(*(asyncio.create_task(child_work(until), name=f"gathered-{i}") for i in range(3)))


async def by_group(until, prefix="grouped"):
    async with asyncio.TaskGroup() as group:
        for i in range(3):
            group.create_task(child_work(until), name=f"{prefix}-{i}")


async def by_awaited_group(until):
    # the group's task awaited directly (its awaiter's wakeup on it, not a gather's callback)
    await asyncio.create_task(by_group(until, "inner-grouped"), name="group-inner")


async def by_await(until):
    await asyncio.create_task(child_work(until), name="awaited-0")


async def by_shield(until):
    await asyncio.shield(asyncio.create_task(child_work(until), name="shielded-0"))


async def by_wait(until):
    await asyncio.wait({asyncio.create_task(child_work(until), name="waited-0")})


async def by_wait_for(until):
    await asyncio.wait_for(asyncio.create_task(child_work(until), name="timed-0"), timeout=3600)


async def parents():
    until = asyncio.get_running_loop().time() + SECONDS
    kinds = [("gather-parent", by_gather), ("await-parent", by_await), ("shield-parent", by_shield),
             ("wait-parent", by_wait), ("wait-for-parent", by_wait_for)]
    if hasattr(asyncio, "TaskGroup"):
        kinds += [("group-parent", by_group), ("group-outer", by_awaited_group)]
    await asyncio.gather(*(asyncio.create_task(fn(until), name=name) for name, fn in kinds))


async def timed_sleep():
    start = time.monotonic()
    try:
        await_lines["timed_sleep"] = sys._getframe().f_lineno + 1
        await asyncio.sleep(SECONDS / 2)
    finally:
        awaited["waiter-sleep"] = time.monotonic() - start


async def timed_event(event):
    start = time.monotonic()
    try:
        await_lines["timed_event"] = sys._getframe().f_lineno + 1
        await event.wait()
    finally:
        awaited["waiter-event"] = time.monotonic() - start


def inner_wait(fut):
    return (yield from fut)


@types.coroutine
def legacy_wait(fut):
    # as libraries written before async def awaited: a generator that yields from another
    return (yield from inner_wait(fut))


async def timed_legacy(fut):
    start = time.monotonic()
    try:
        await_lines["timed_legacy"] = sys._getframe().f_lineno + 1
        await legacy_wait(fut)
    finally:
        awaited["waiter-legacy"] = time.monotonic() - start


async def waits():
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    sleeper = asyncio.create_task(timed_sleep(), name="waiter-sleep")
    eventer = asyncio.create_task(timed_event(event), name="waiter-event")
    legacy = asyncio.create_task(timed_legacy(fut), name="waiter-legacy")
    computer = asyncio.create_task(a_top(loop.time() + SECONDS * 3 / 4), name="computer")
    await computer
    event.set()
    fut.set_result(None)
    await asyncio.gather(sleeper, eventer, legacy)
    await asyncio.sleep(SECONDS / 4)


async def kid():
    await asyncio.sleep(SECONDS)


async def renamed():
    async def parent():
        await asyncio.gather(*(asyncio.create_task(kid(), name=f"kid-{i}") for i in range(20)))
    task = asyncio.create_task(parent(), name="old-parent")
    await asyncio.sleep(SECONDS / 2)
    task.set_name("new-parent")  # while it awaits its children
    await task


cancelled_at = []  # many: when the sleepers stopped waiting


async def many():
    asyncio.current_task().set_name("many-main")  # awaits the computer
    # The loop's create_task names a task as it makes it; before 3.13 asyncio.create_task makes
    # it as Task-N and names it after (the torture workload covers that), a window that 10 000
    # creations under the sampler would catch.
    loop = asyncio.get_running_loop()
    sleepers = [loop.create_task(long_wait(), name=f"sleeper-{i}") for i in range(10_000)]
    await asyncio.sleep(0)  # each reaches its await
    await loop.create_task(a_top(loop.time() + SECONDS), name="computer")
    cancelled_at.append(time.monotonic())
    for t in sleepers:
        t.cancel()
    await asyncio.gather(*sleepers, return_exceptions=True)


def note(task):
    with names_lock:
        made_names.add(task.get_name())
        made_ids.add((task.get_name(), id(task)))
    return task


async def twins():
    loop = asyncio.get_running_loop()
    until = loop.time() + SECONDS
    await asyncio.gather(*(note(asyncio.create_task(a_top(until), name="twin")) for _ in range(2)))


async def short_work(i):
    c_work() if i % 7 == 0 else None
    await asyncio.sleep(0)
    if i % 5 == 0:
        raise ValueError(i)
    return i


async def long_wait():
    await asyncio.sleep(3600)


def noting_factory(loop, coro, **kw):
    return note(asyncio.Task(coro, loop=loop, **kw))


async def one_run(seed):
    note(asyncio.current_task())  # asyncio.run's own task
    if sys.version_info < (3, 13):
        # asyncio.create_task makes the task as Task-N, then gives it its name: a thread that
        # loses the GIL between the two leaves the task named Task-N for a while, and its samples
        # rightly say so. The factory notes that first name too.
        asyncio.get_running_loop().set_task_factory(noting_factory)
    tasks = []
    for i in range(200):
        name = f"torture-{seed}-{i}" if i % 3 else None  # None: asyncio's own Task-N
        tasks.append(note(asyncio.create_task(short_work(i) if i % 4 else long_wait(), name=name)))
    await asyncio.sleep(0)
    for t in tasks[::4]:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def torture_thread(index, until):
    run = 0
    while time.monotonic() < until:
        asyncio.run(one_run(f"{index}.{run}"))
        run += 1


def main():
    started = time.monotonic()
    spprof.start(interval_ms=INTERVAL, mode=MODE)
    if KIND in ("three", "subclass", "eager"):
        asyncio.run(three())
    elif KIND == "uvloop":
        import uvloop
        uvloop.run(three())
    elif KIND == "parents":
        asyncio.run(parents())
    elif KIND == "waits":
        asyncio.run(waits())
    elif KIND == "many":
        asyncio.run(many())
    elif KIND == "renamed":
        asyncio.run(renamed())
    elif KIND == "twins":
        asyncio.run(twins())
    else:
        until = time.monotonic() + SECONDS
        threads = [threading.Thread(target=torture_thread, args=(i, until)) for i in range(4)]
        for t in threads:
            t.start()
        torture_thread("main", until)
        for t in threads:
            t.join()
    profile = spprof.stop()
    duration = time.monotonic() - started
    by_task, computer_leaves, task_parents, runs, chains = {}, {}, set(), {}, {}
    task_ids = {}  # task name -> its samples' task ids -> their weight
    waiting = {}  # task name -> the functions below the task frame, outermost first, with their lines
    waiting_reads = {}  # task name -> its samples where it waits
    for s in profile.samples:
        if s.task_name and any(f.filename == "<asyncio task>" for f in s.frames[:1]):
            # a suspended task: its samples start at its own frame, with no event loop below
            below = [f"{f.function_name.split('.')[-1]}:{f.lineno}" for f in s.frames
                     if f.filename != "<asyncio task>"]
            key = s.task_name + ">" + ">".join(below)
            waiting[key] = waiting.get(key, 0) + s.weight_ns
            waiting_reads[s.task_name] = waiting_reads.get(s.task_name, 0) + 1
    for s in profile.samples:
        # the tasks on the stack, outermost first: the running one and those awaiting it
        chain = ">".join(f.function_name for f in s.frames if f.filename == "<asyncio task>")
        chains[chain] = chains.get(chain, 0) + s.weight_ns
        by_task[s.task_name] = by_task.get(s.task_name, 0) + s.weight_ns
        ids = task_ids.setdefault(s.task_name, {})
        ids[str(s.task_id)] = ids.get(str(s.task_id), 0) + s.weight_ns
        names = [f.function_name for f in s.frames]
        if any(n.endswith("a_top") for n in names):
            key = s.task_name + ">" + ">".join(n.split(".")[-1] for n in names[-3:])
            computer_leaves[key] = computer_leaves.get(key, 0) + s.weight_ns
        for k, f in enumerate(s.frames):  # the coroutine each task frame stands above
            if f.filename == "<asyncio task>":
                if k + 1 < len(s.frames) and s.frames[k + 1].filename == "<asyncio task>":
                    continue  # 3.14: a task awaiting the one below it
                below = s.frames[k + 1].function_name.split(".")[-1] if k + 1 < len(s.frames) else ""
                task_parents.add(below)
                runs.setdefault(f.function_name, set()).add(below)
    if OUTPUT:
        for fmt, ext in (("speedscope", "json"), ("collapsed", "txt"), ("pprof", "pb.gz"),
                         ("chrome_trace", "trace.json"), ("html", "html")):
            profile.save(os.path.join(OUTPUT, f"profile.{ext}"), format=fmt)
    print(json.dumps({"waiting": waiting, "waiting_reads": waiting_reads, "awaited": awaited, "await_lines": await_lines, "duration": duration,
                      "sleepers_s": cancelled_at[0] - started if cancelled_at else None,
                      "by_task": by_task, "computer": computer_leaves, "made": sorted(made_names),
                      "made_ids": sorted(made_ids), "task_ids": task_ids,
                      "under_task": sorted(task_parents), "chains": chains,
                      "runs": {name: sorted(below) for name, below in runs.items()}, "counters": profile.counters}))


main()
