import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

import spprof

WORKLOADS = Path(__file__).parent / "workloads"
# The busy work the workload programs import from their folder serves the tests too.
sys.path.append(str(WORKLOADS))
from busy import spin, tiny_caller  # noqa: E402,F401  (re-exported for the tests)


@pytest.fixture(autouse=True)
def no_profiler_left_running():
    yield
    if spprof.is_active():
        spprof.stop()
        pytest.fail("a test left the profiler running")


def run_workload(name, *args, timeout=180, env=None):
    """Runs tests/workloads/NAME.py in a fresh interpreter; returns (process, last JSON line)."""
    # -X faulthandler: a crash of the workload leaves its threads' stacks in stderr
    proc = subprocess.run(
        [sys.executable, "-X", "faulthandler", str(WORKLOADS / f"{name}.py"), *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else None
    return proc, result


def weight_by(profile, key):
    """Sum of sample weights grouped by key(sample); samples with key None are left out."""
    out = defaultdict(int)
    for s in profile.samples:
        k = key(s)
        if k is not None:
            out[k] += s.weight_ns
    return dict(out)


def shares(weights):
    total = sum(weights.values())
    return {k: 100.0 * v / total for k, v in weights.items()}


def function_in_stack(names):
    """The first of `names` found in a sample's stack, leaf first."""
    def key(sample):
        for frame in reversed(sample.frames):
            if frame.function_name in names:
                return frame.function_name
        return None
    return key
