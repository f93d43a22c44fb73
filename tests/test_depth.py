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
    for _ in range(5):
        recurse(500, 300_000)
    profile = spprof.stop()
    deep = [s for s in profile.samples if s.frames and s.frames[-1].function_name == "recurse"
            and sum(f.function_name == "recurse" for f in s.frames) >= kept - 1]
    assert len(deep) > 20
    for s in deep:
        assert s.frames[0].function_name == "<truncated>"
        assert len(s.frames) == kept + 1
        assert all(f.function_name == "recurse" for f in s.frames[1:])
