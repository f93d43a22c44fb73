"""How soon the tasks of an event loop are named: 50 tasks of ~15 us steps, the share of the
work's samples that name a task, second by second from the start of the profile.

    python bench/tasks_named_by_second.py [cpu|wall] [INTERVAL_MS] [SECONDS]

A task is named by the running task's record when that record is read while the task still runs;
else by its coroutine, once the task is known by it (a record read earlier named it). The first
second shows how fast the tasks become known. Prints `second:share` pairs.
"""
import asyncio
import sys

import spprof

MODE = sys.argv[1] if len(sys.argv) > 1 else "cpu"
INTERVAL = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
SECONDS = float(sys.argv[3]) if len(sys.argv) > 3 else 8.0


def leaf_work():
    total = 0
    for i in range(800):
        total += i & 7
    return total


async def task(deadline, loop):
    while loop.time() < deadline:
        leaf_work()
        await asyncio.sleep(0)


async def main():
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SECONDS
    await asyncio.gather(*(task(deadline, loop) for _ in range(50)))


spprof.start(interval_ms=INTERVAL, mode=MODE)
asyncio.run(main())
profile = spprof.stop()
start = min(s.timestamp_ns for s in profile.samples)
by_second = {}
for s in profile.samples:
    names = [f.function_name for f in s.frames]
    if not names or names[-1] != "leaf_work" or s.frames[0].filename == "<asyncio task>":
        continue
    counts = by_second.setdefault(int((s.timestamp_ns - start) / 1e9), [0, 0])
    counts[0] += 1
    counts[1] += any(f.filename == "<asyncio task>" for f in s.frames)
print(" ".join(f"{k}:{named / n:.2f}" for k, (n, named) in sorted(by_second.items())))
