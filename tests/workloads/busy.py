"""Busy work for anything that needs a running program to sample: the tests (through conftest),
the workload programs beside this file (imported from their folder) and the bench scripts (which
add this folder to sys.path). Only the standard library, and nothing here knows about spprof.

A function whose name or lines a test or a peer profiler looks for as the leaf keeps its loop
inline in its own file; these are for callers that only need the CPU spent."""
import time


def spin(n=300_000):
    """A busy loop of n steps."""
    total = 0
    for i in range(n):
        total += i
    return total


def work(seconds, clock=time.monotonic):
    """Pure-Python arithmetic until `clock` (wall time by default, or a CPU clock) has advanced
    `seconds`."""
    end = clock() + seconds
    total = 0
    while clock() < end:
        for i in range(2000):
            total += i
    return total


def tiny(x):
    """A function that lives about 100 ns: always moving under a sample."""
    return x + 1


def tiny_caller(n):
    """n calls of tiny(), nothing else: the share of samples in tiny is the tiny-call measure."""
    total = 0
    for i in range(n):
        total += tiny(i)
    return total
