"""The data model of api.md: Frame, Sample, Profile, ProfilerStats."""
from __future__ import annotations

import datetime as _dt
import platform as _platform
import sys
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from . import _format_registry


# The file name of the frame that stands for an asyncio task, above its coroutine's frames; its
# function name is the task's name (csrc/profile_data.h).
TASK_FILE = "<asyncio task>"


@dataclass(frozen=True)
class Frame:
    function_name: str
    filename: str
    lineno: int
    is_native: bool = False


@dataclass(frozen=True)
class Sample:
    timestamp_ns: int
    thread_id: int
    thread_name: str
    frames: Tuple[Frame, ...]  # root first, leaf last
    native_id: int = 0
    weight_ns: int = 0
    task_name: str = ""  # the asyncio task the thread ran (the innermost one), or ""
    task_id: int = 0  # id() of that task, 0 with no task; a later task may reuse a freed task's id


@dataclass(frozen=True)
class ProfilerStats:
    collected_samples: int
    dropped_samples: int
    duration_ms: float
    overhead_estimate_pct: float
    torn_walks: int = 0
    missed_ticks: int = 0
    threads_seen: int = 0
    bytes_held: int = 0
    reader: str = ""
    tasks_named: int = 0     # samples that name the asyncio task they ran
    tasks_off: str = ""      # why asyncio tasks are not named on this interpreter; "" when they are
    # continuous profiling (start_continuous): zero without it
    windows_made: int = 0
    windows_sent: int = 0
    windows_retried: int = 0
    windows_dropped: int = 0
    bytes_sent: int = 0
    last_error: str = ""


def _python_version() -> str:
    return _platform.python_version()


def _platform_name() -> str:
    return f"{sys.platform}-{_platform.machine()}"


@dataclass(frozen=True, init=False, eq=False, repr=False)
class Profile:
    """A finished profile, frozen like the rest of the data model. `samples` is built as Python
    objects only when first asked for: saving works from the native tables without them."""

    start_time: _dt.datetime
    end_time: _dt.datetime
    interval_ms: float
    dropped_count: int
    python_version: str
    platform: str
    mode: str
    counters: Dict[str, int]
    _data: Any  # the native tables (spprof._native.ProfileData), or None
    _samples: Optional[List[Sample]]

    def __init__(
        self,
        start_time: _dt.datetime,
        end_time: _dt.datetime,
        interval_ms: float,
        samples: Optional[List[Sample]] = None,
        dropped_count: int = 0,
        python_version: Optional[str] = None,
        platform: Optional[str] = None,
        *,
        mode: str = "cpu",
        data: Any = None,
        counters: Optional[Dict[str, int]] = None,
    ) -> None:
        init = object.__setattr__  # frozen: assignment is refused after __init__
        init(self, "start_time", start_time)
        init(self, "end_time", end_time)
        init(self, "interval_ms", interval_ms)
        init(self, "dropped_count", dropped_count)
        init(self, "python_version", python_version or _python_version())
        init(self, "platform", platform or _platform_name())
        init(self, "mode", mode)
        init(self, "counters", dict(counters or {}))
        init(self, "_data", data)
        init(self, "_samples", samples)

    @property
    def samples(self) -> List[Sample]:
        samples = self._samples
        if samples is None:
            samples = _build_samples(self._data) if self._data is not None else []
            object.__setattr__(self, "_samples", samples)
        return samples

    @property
    def process_cpu_ns(self) -> int:
        """The CPU time the whole process used over the session (every thread, spprof's own
        included); 0 for a Profile made by hand."""
        return self.counters.get("process_cpu_ns", 0)

    @property
    def torn_count(self) -> int:
        return self.counters.get("torn_walks", 0)

    def __repr__(self) -> str:
        n = len(self._data) if self._samples is None and self._data is not None else len(self.samples)
        return f"<spprof.Profile {n} samples, {self.interval_ms} ms, {self.mode} mode>"

    # The exporters are reached through the registry that spprof.formats fills: they depend on
    # the model, never the reverse.
    def to_speedscope(self) -> Dict[str, Any]:
        result: Dict[str, Any] = _format_registry.FORMATS["speedscope"].to_dict(self)
        return result

    def to_collapsed(self, *, merge_lines: bool = False, thread_root: bool = False) -> str:
        text: str = _format_registry.FORMATS["collapsed"].to_text(self, merge_lines=merge_lines, thread_root=thread_root)
        return text

    def save(self, path: Any, format: Optional[str] = None) -> None:
        _format_registry.save(self, path, format)


def is_native_thread(function_name: str, filename: str) -> bool:
    """Whether a frame is the pseudo-frame `<native thread NAME>` that stands for the CPU of a
    thread Python does not know (csrc/native_threads.h): it is then `Frame.is_native`."""
    return not filename and function_name.startswith("<native thread ") and function_name.endswith(">")


def _build_samples(data: Any) -> List[Sample]:
    import array

    symbols = data.symbols()
    frames = [Frame(symbols[s][0], symbols[s][1], line, is_native_thread(*symbols[s][:2])) for s, line in data.frames()]
    stacks = [tuple(frames[i] for i in stack) for stack in data.stacks()]
    tasks = [next((f.function_name for f in reversed(stack) if f.filename == TASK_FILE), "") for stack in stacks]
    threads = data.threads()
    task_ids = array.array("Q", data.stack_tasks())
    t_col, w_col, th_col, st_col = data.sample_columns()
    t = array.array("Q", t_col)
    w = array.array("Q", w_col)
    th = array.array("I", th_col)
    st = array.array("I", st_col)
    out = [
        Sample(t[i], threads[th[i]][0], threads[th[i]][2], stacks[st[i]], threads[th[i]][1], w[i], tasks[st[i]],
               task_ids[st[i]])
        for i in range(len(t))
    ]
    out.sort(key=lambda s: s.timestamp_ns)
    return out
