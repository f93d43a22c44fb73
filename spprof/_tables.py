"""The interned tables the exporters read: the native profile's own tables when there are any,
otherwise the same shape built from `Profile.samples` (a Profile made by hand)."""
from __future__ import annotations

import array
from typing import TYPE_CHECKING, Dict, List, NamedTuple, Tuple

if TYPE_CHECKING:
    from ._model import Frame, Profile


class Tables(NamedTuple):
    symbols: List[Tuple[str, str, int]]  # (name, filename, first line of the code; 0 if unknown)
    frames: List[Tuple[int, int]]  # (symbol, line)
    stacks: List[Tuple[int, ...]]  # frame ids, root first
    threads: List[Tuple[int, int, str]]  # (ident, native id, name)
    # One entry per sample, in the native order (time order within each thread)
    t_ns: "array.array[int]"  # monotonic
    weight_ns: "array.array[int]"
    thread: "array.array[int]"
    stack: "array.array[int]"
    start_ns: int  # monotonic time of start(), on the clock of t_ns
    end_ns: int
    start_unix_ns: int
    interval_ns: int


def tables(profile: "Profile") -> Tables:
    interval_ns = int(round(profile.interval_ms * 1e6))
    data = profile._data
    if data is not None:
        t, w, th, st = data.sample_columns()
        return Tables(
            data.symbols(), data.frames(), data.stacks(), data.threads(),
            array.array("Q", t), array.array("Q", w), array.array("I", th), array.array("I", st),
            data.start_ns, data.end_ns, data.start_unix_ns, interval_ns,
        )
    return _from_samples(profile, interval_ns)


def _from_samples(profile: "Profile", interval_ns: int) -> Tables:
    symbols: Dict[Tuple[str, str], int] = {}
    frames: Dict[Tuple[int, int], int] = {}
    stacks: Dict[Tuple["Frame", ...], int] = {}
    stack_frames: List[Tuple[int, ...]] = []
    threads: Dict[Tuple[int, int, str], int] = {}
    t, w, th, st = array.array("Q"), array.array("Q"), array.array("I"), array.array("I")
    for s in profile.samples:
        stack_id = stacks.get(s.frames)
        if stack_id is None:
            ids = []
            for f in s.frames:
                sym = symbols.setdefault((f.function_name, f.filename), len(symbols))
                ids.append(frames.setdefault((sym, f.lineno), len(frames)))
            stack_id = stacks[s.frames] = len(stack_frames)
            stack_frames.append(tuple(ids))
        t.append(s.timestamp_ns)
        # A hand-made sample may carry no weight: it then stands for one interval.
        w.append(s.weight_ns or interval_ns)
        th.append(threads.setdefault((s.thread_id, s.native_id, s.thread_name), len(threads)))
        st.append(stack_id)
    start_unix_ns = int(profile.start_time.timestamp() * 1e9)
    duration_ns = int((profile.end_time - profile.start_time).total_seconds() * 1e9)
    start_ns = min(t) if t else 0
    return Tables(
        [(name, filename, 0) for name, filename in symbols], list(frames), stack_frames, list(threads),
        t, w, th, st, start_ns, max(start_ns + duration_ns, max(t) if t else 0), start_unix_ns, interval_ns,
    )
