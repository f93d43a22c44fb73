"""Chrome's trace event format (JSON object form), for ui.perfetto.dev and chrome://tracing.

Each thread's samples, in time order, become B/E events: between two consecutive samples the
frames they share stay open, the others end and begin. A frame whose line moved stays open (the
function is still in the same call) but everything it called is taken as a new call."""
from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Dict, Iterator, List, Tuple

from .._tables import tables

if TYPE_CHECKING:
    from .._model import Profile

NAME = "chrome_trace"
EXTENSIONS = (".trace.json",)


def _ts(ns: int) -> str:
    # microseconds with the nanoseconds kept exact: no float rounding can reorder events
    us, rest = divmod(ns, 1000)
    return f"{us}.{rest:03d}"


def _args(filename: str, first_line: int) -> str:
    # where the function is defined; spprof's own marker frames have no file, and a first
    # line of 0 means the profile did not know it
    args: Dict[str, object] = {"file": filename} if filename else {}
    if filename and first_line > 0:
        args["first_line"] = first_line
    return '"args":%s,' % json.dumps(args, separators=(",", ":")) if args else ""


def _kept(a: Tuple[int, ...], b: Tuple[int, ...], frame_symbol: List[int]) -> int:
    """How many outer frames of stack `a` carry on in stack `b`."""
    k, n = 0, min(len(a), len(b))
    while k < n and a[k] == b[k]:
        k += 1
    if k < n and frame_symbol[a[k]] == frame_symbol[b[k]]:
        k += 1  # the same function, on another line
    return k


def _chunks(profile: "Profile") -> Iterator[str]:
    """The trace's events as JSON text, a thread at a time, events separated by ",\n"."""
    tab = tables(profile)
    pid = os.getpid()  # the profiled process: a Profile is saved by the process that made it
    frame_symbol = [s for s, _ in tab.frames]
    # Every event is a fixed head (phase, name, args) and a tail (pid, tid, ts) that all the
    # events of one step of one thread share, so a step's text is one join of cached heads.
    end_head = ['{"ph":"E","name":%s,' % json.dumps(name) for name, _, _ in tab.symbols]
    begin_head = ['{"ph":"B","name":%s,%s' % (json.dumps(name), _args(filename, first_line))
                  for name, filename, first_line in tab.symbols]
    steps: Dict[Tuple[int, int], Tuple[str, ...]] = {}

    def step(a: int, b: int) -> Tuple[str, ...]:
        # the events from stack a to stack b (-1: no stack)
        sa = tab.stacks[a] if a >= 0 else ()
        sb = tab.stacks[b] if b >= 0 else ()
        keep = _kept(sa, sb, frame_symbol)
        heads = steps[a, b] = tuple([end_head[frame_symbol[f]] for f in reversed(sa[keep:])]
                                    + [begin_head[frame_symbol[f]] for f in sb[keep:]])
        return heads

    yield ('{"ph":"M","name":"process_name","pid":%d,"tid":0,"ts":0,"args":{"name":%s}}'
           % (pid, json.dumps(f"{os.path.basename(sys.argv[0]) or 'python'} (spprof, {profile.mode} mode)")))
    by_thread: List[List[int]] = [[] for _ in tab.threads]
    for i, th in enumerate(tab.thread):
        by_thread[th].append(i)
    interval = max(tab.interval_ns, 1)
    # cpu mode records a thread only while it runs: a gap of over two intervals means it was off
    # the CPU, and its frames are closed at the end of its last sample rather than left open.
    max_gap = 2 * interval if profile.mode != "wall" else 1 << 64
    t, stack_of = tab.t_ns, tab.stack
    start = min(tab.start_ns, min(t)) if t else 0  # times from 0 up: _ts() takes no negatives
    for th, (_, native_id, name) in enumerate(tab.threads):
        rows = by_thread[th]
        if not rows:
            continue
        if any(t[rows[i]] > t[rows[i + 1]] for i in range(len(rows) - 1)):
            rows.sort(key=t.__getitem__)
        out = ['{"ph":"M","name":"thread_name","pid":%d,"tid":%d,"ts":0,"args":{"name":%s}}'
               % (pid, native_id, json.dumps(name or "Thread"))]
        tail_head = '"pid":%d,"tid":%d,"ts":' % (pid, native_id)

        def emit(a: int, b: int, ns: int) -> None:
            heads = steps.get((a, b))
            if heads is None:
                heads = step(a, b)
            if heads:
                tail = f"{tail_head}{_ts(ns)}}}"
                out.append((tail + ",\n").join(heads) + tail)

        prev_stack, prev_t = -1, 0
        for i in rows:
            stack, now = stack_of[i], t[i] - start
            if now - prev_t > max_gap and prev_stack >= 0:
                emit(prev_stack, -1, prev_t + interval)
                prev_stack = -1
            if stack != prev_stack:
                emit(prev_stack, stack, now)
                prev_stack = stack
            prev_t = now
        emit(prev_stack, -1, prev_t + interval)
        yield ",\n".join(out)


def write(profile: "Profile", path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write('{"displayTimeUnit":"ms","traceEvents":[\n')
        for i, chunk in enumerate(_chunks(profile)):
            f.write(",\n" + chunk if i else chunk)
        f.write("\n]}\n")
