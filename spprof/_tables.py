"""The one shape every exporter and `spprof report`/`view` read: interned symbols, frames, stacks
and threads, and one row per sample. A live profile gives its native tables (or, made by hand,
tables built from `Profile.samples`); a file read back (spprof._load) gives the same shape."""
from __future__ import annotations

import array
import re
from typing import TYPE_CHECKING, Dict, List, NamedTuple, Optional, Sequence, Tuple

if TYPE_CHECKING:
    from ._model import Frame, Profile


def thread_label(name: str, native_id: int, tid: str = "tid ") -> str:
    """A thread as shown to people: `name (tid 123)`, as Speedscope and HTML name their threads;
    collapsed stacks' thread roots leave the "tid " out."""
    return f"{name or 'Thread'} ({tid}{native_id})"


_CPU_SHARE = re.compile(r"profiled ([0-9.]+) s of ([0-9.]+) s process CPU")


def cpu_share(profiled_ns: int, process_ns: int) -> str:
    """How much of the process's CPU the profile holds, as every view shows it."""
    pct = f" ({100.0 * profiled_ns / process_ns:.0f}%)" if process_ns else ""
    return f"profiled {profiled_ns / 1e9:.3f} s of {process_ns / 1e9:.3f} s process CPU{pct}"


def process_cpu_in(title: str) -> int:
    """The process's CPU that cpu_share() wrote into a title; 0 when it is not there."""
    m = _CPU_SHARE.search(title)
    return int(round(float(m.group(2)) * 1e9)) if m else 0


def profile_title(profile: "Profile") -> str:
    """The name a profile carries in the files it is saved to; in cpu mode it ends with the
    share of the process's CPU the profile holds."""
    title = f"spprof {profile.mode} profile, {profile.interval_ms:g} ms, {profile.start_time.isoformat()}"
    process = profile.process_cpu_ns
    if profile.mode != "cpu" or not process:
        return title
    data = profile._data
    profiled = data.total_weight_ns() if data is not None else sum(s.weight_ns for s in profile.samples)
    return f"{title}; {cpu_share(profiled, process)}"


class Tables(NamedTuple):
    symbols: List[Tuple[str, str, int]]  # (name, filename, first line of the code; 0 if unknown)
    frames: List[Tuple[int, int]]  # (symbol, line)
    stacks: List[Tuple[int, ...]]  # frame ids, root first
    threads: List[Tuple[int, int, str]]  # (ident, native id, name); 0 when a file did not say
    labels: List[str]  # each thread as shown, thread_label() unless a file named it otherwise
    # One entry per row, in the native order (time order within each thread)
    t_ns: Sequence[int]  # monotonic; 0 when read from a file
    weight_ns: Sequence[int]  # nanoseconds, or samples when unit is "samples"
    thread: Sequence[int]
    stack: Sequence[int]
    counts: Optional[Sequence[int]]  # samples a row stands for; None: one each
    start_ns: int  # monotonic time of start(), on the clock of t_ns
    end_ns: int
    start_unix_ns: int
    interval_ns: int
    title: str
    mode: str  # "cpu", "wall" or "" when a file does not say
    unit: str  # "nanoseconds", or "samples" when weights are sample counts
    process_cpu_ns: int = 0  # the process's CPU over a cpu-mode session; 0 when unknown
    stack_tasks: Sequence[int] = ()  # per stack: id() of its innermost asyncio task, 0 for none; () when unknown

    def located_frames(self) -> List[Tuple[str, str, int]]:
        """(function, file, line) of each frame id."""
        return [(self.symbols[s][0], self.symbols[s][1], line) for s, line in self.frames]

    def count(self, row: int) -> int:
        return 1 if self.counts is None else self.counts[row]

    def by_thread(self) -> List[Dict[Tuple[int, ...], List[int]]]:
        """Per thread: stack (frame ids) -> [samples, weight], in the order of first rows."""
        out: List[Dict[Tuple[int, ...], List[int]]] = [{} for _ in self.threads]
        for row, (th, st, w) in enumerate(zip(self.thread, self.stack, self.weight_ns)):
            stack = self.stacks[st]
            entry = out[th].get(stack)
            if entry is None:
                entry = out[th][stack] = [0, 0]
            entry[0] += self.count(row)
            entry[1] += w
        return out

    def total(self) -> Tuple[int, int]:
        """(samples, weight) over every row."""
        samples = len(self.stack) if self.counts is None else sum(self.counts)
        return samples, sum(self.weight_ns)


def tables(profile: "Profile") -> Tables:
    interval_ns = int(round(profile.interval_ms * 1e6))
    data = profile._data
    if data is None:
        return _from_samples(profile, interval_ns)
    t, w, th, st = data.sample_columns()
    threads = data.threads()
    return Tables(
        data.symbols(), data.frames(), data.stacks(), threads, [thread_label(n, i) for _, i, n in threads],
        array.array("Q", t), array.array("Q", w), array.array("I", th), array.array("I", st), None,
        data.start_ns, data.end_ns, data.start_unix_ns, interval_ns,
        profile_title(profile), profile.mode, "nanoseconds", _process_cpu(profile),
        array.array("Q", data.stack_tasks()),
    )


def _process_cpu(profile: "Profile") -> int:
    return profile.process_cpu_ns if profile.mode == "cpu" else 0


def _from_samples(profile: "Profile", interval_ns: int) -> Tables:
    symbols: Dict[Tuple[str, str], int] = {}
    frames: Dict[Tuple[int, int], int] = {}
    stacks: Dict[Tuple[Tuple["Frame", ...], int], int] = {}
    stack_frames: List[Tuple[int, ...]] = []
    stack_tasks: List[int] = []
    threads: Dict[Tuple[int, int, str], int] = {}
    t, w, th, st = array.array("Q"), array.array("Q"), array.array("I"), array.array("I")
    for s in profile.samples:
        stack_id = stacks.get((s.frames, s.task_id))
        if stack_id is None:
            ids = []
            for f in s.frames:
                sym = symbols.setdefault((f.function_name, f.filename), len(symbols))
                ids.append(frames.setdefault((sym, f.lineno), len(frames)))
            stack_id = stacks[s.frames, s.task_id] = len(stack_frames)
            stack_frames.append(tuple(ids))
            stack_tasks.append(s.task_id)
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
        [thread_label(name, native_id) for _, native_id, name in threads], t, w, th, st, None,
        start_ns, max(start_ns + duration_ns, max(t) if t else 0), start_unix_ns, interval_ns,
        profile_title(profile), profile.mode, "nanoseconds", _process_cpu(profile), stack_tasks,
    )
