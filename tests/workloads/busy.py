"""Busy work for workloads that need something to sample (imported from their folder)."""
import time


def work(seconds):
    """Pure-Python arithmetic for `seconds` of wall time."""
    end = time.monotonic() + seconds
    total = 0
    while time.monotonic() < end:
        for i in range(10_000):
            total += i
    return total
