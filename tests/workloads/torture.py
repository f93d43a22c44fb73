"""Everything that makes stacks change under a sampler at 1 ms: thread churn, generators,
coroutines, exceptions, gc.collect and recursion deep enough to spill into new stack chunks."""
import asyncio
import gc
import json
import sys
import threading
import time

import spprof

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
stop = threading.Event()


def leaf_work(n):
    total = 0
    for i in range(n):
        total += i & 7
    return total


def short_lived(k):
    return leaf_work(2000 + k)


def churn():
    k = 0
    while not stop.is_set():
        threads = [threading.Thread(target=short_lived, args=(k + j,)) for j in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        k += 1


def numbers(n):
    for i in range(n):
        leaf_work(50)
        yield i


def pairs(n):
    for a in numbers(n):
        yield a, a * a
        yield from numbers(3)


def generators():
    while not stop.is_set():
        for _ in pairs(200):
            pass


async def task(i):
    for _ in range(20):
        leaf_work(300)
        await asyncio.sleep(0)
    return i


async def many_tasks():
    while not stop.is_set():
        await asyncio.gather(*(task(i) for i in range(50)))


def coroutines():
    asyncio.run(many_tasks())


class Boom(Exception):
    pass


def raiser(depth):
    if depth == 0:
        raise Boom("deep")
    try:
        return raiser(depth - 1)
    finally:
        leaf_work(10)


def exceptions():
    while not stop.is_set():
        try:
            raiser(30)
        except Boom:
            pass


def big_frame(depth):
    # Many locals make frames large, so the recursion spills into new stack chunks and back.
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = a8 = a9 = depth
    b0 = b1 = b2 = b3 = b4 = b5 = b6 = b7 = b8 = b9 = depth
    if depth == 0:
        return leaf_work(500)
    return big_frame(depth - 1) + a0 + a9 + b0 + b9 - a1 - a8 - b1 - b8 + a2 - a2 + b2 - b2 + a3 - a3 + b3 - b3 \
        + a4 - a4 + b4 - b4 + a5 - a5 + b5 - b5 + a6 - a6 + b6 - b6 + a7 - a7 + b7 - b7


def recursion():
    sys.setrecursionlimit(10_000)
    while not stop.is_set():
        big_frame(2500)
        gc.collect()


def main():
    workers = [threading.Thread(target=f, name=f.__name__)
               for f in (churn, generators, coroutines, exceptions, recursion)]
    spprof.start(interval_ms=1)
    for t in workers:
        t.start()
    deadline = time.monotonic() + SECONDS
    while time.monotonic() < deadline:
        gc.collect()
        leaf_work(20_000)
    stop.set()
    for t in workers:
        t.join()
    profile = spprof.stop()
    frames = sorted({(f.function_name, f.filename) for s in profile.samples for f in s.frames})
    # Functions the standard library compiles from a string (namedtuple's __new__, as
    # selectors.SelectorKey's, made by asyncio's loop): their frames are real, in "<string>".
    from_strings = sorted({o.__code__.co_name for o in gc.get_objects()
                           if callable(o) and getattr(getattr(o, "__code__", None), "co_filename", "") == "<string>"})
    print(json.dumps({"samples": len(profile.samples), "frames": frames, "from_strings": from_strings,
                      "counters": profile.counters,
                      "threads": sorted({s.thread_name for s in profile.samples})}))


if __name__ == "__main__":
    main()
