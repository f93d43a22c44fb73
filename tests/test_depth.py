"""Deep stacks keep their innermost frames and mark the cut."""
import sys

import pytest

import spprof


def recurse(n, work):
    if n == 0:
        total = 0
        for i in range(work):
            total += i
        return total
    return recurse(n - 1, work)


@pytest.mark.parametrize("max_depth", [None, 50])
def test_500_deep_recursion_keeps_innermost_frames(max_depth):
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 2000))
    options = {} if max_depth is None else {"max_depth": max_depth}
    kept = max_depth or 128
    spprof.start(interval_ms=1, **options)
    for _ in range(30):  # a few hundred ms: enough deep samples on a busy machine too
        recurse(500, 300_000)
    profile = spprof.stop()
    stacks = [[f.function_name for f in s.frames] for s in profile.samples]
    truncated = [names for names in stacks if names and names[0] == "<truncated>"]
    # every stack deeper than the bound keeps its innermost frames, exactly as many as the bound
    assert all(len(names) == kept + 1 for names in truncated), [n for n in truncated if len(n) != kept + 1][:3]
    assert all(len(names) <= kept for names in stacks if names[:1] != ["<truncated>"])
    # innermost: deep in the recursion only recurse frames are left (a tick on the way down or
    # up, with the test's own frames within the bound, is a truncated stack too)
    assert sum(all(n == "recurse" for n in names[1:]) for names in truncated) > 20


def parked(n, ready, done):
    if n == 0:
        ready.set()
        done.wait()
        return
    parked(n - 1, ready, done)


def test_a_stack_over_several_chunks_is_copied_in_a_few_reads_whole():
    # 600 frames span several of 3.11+'s stack chunks (3.9/3.10 keep frames on the heap): each
    # chunk is copied in one read, never frame by frame, and every frame is there
    import threading
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 2000))
    ready, done = threading.Event(), threading.Event()
    t = threading.Thread(target=parked, args=(600, ready, done), name="deep")
    t.start()
    ready.wait()
    spprof.start(interval_ms=5, mode="wall", max_depth=1000)
    try:
        while spprof.stats().collected_samples < 200:
            pass
    finally:
        profile = spprof.stop()
        done.set()
        t.join()
    deep = [s for s in profile.samples if s.thread_name == "deep"]
    assert len(deep) > 50
    for s in deep:
        assert sum(f.function_name == "parked" for f in s.frames) == 601
    ticks = profile.counters["ticks"]
    # a tick reads the thread list, this thread's stack and the parked one's chunks (16 KiB, a
    # hundred frames or more each), and their code objects: about 9 reads a tick on 3.11, where
    # frame by frame would be over 600. On 3.12 a run settles at about 10, 20 or 30 (also before
    # the reader merged ranges; why is not known yet) and once reached 46.
    assert profile.counters["reads"] <= 100 * ticks, (profile.counters["reads"], ticks)
