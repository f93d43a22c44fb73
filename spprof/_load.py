"""Reads a profile back for `spprof report` and `spprof view`: a Speedscope file that spprof
wrote, collapsed stacks, or a live Profile, all into one shape, stacks summed per thread."""
from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, DefaultDict, Dict, List, Tuple

if TYPE_CHECKING:
    from ._model import Profile

# Speedscope's time units, in nanoseconds
_UNIT_NS = {"nanoseconds": 1, "microseconds": 1_000, "milliseconds": 1_000_000, "seconds": 1_000_000_000}
_COLLAPSED_FRAME = re.compile(r"^(.*) \((.*):(\d+)\)$")


@dataclass
class Thread:
    name: str
    # stack (frame ids, root first) -> [samples, weight]
    stacks: DefaultDict[Tuple[int, ...], List[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))

    def add(self, stack: Tuple[int, ...], samples: int, weight: int) -> None:
        entry = self.stacks[stack]
        entry[0] += samples
        entry[1] += weight


@dataclass
class Loaded:
    title: str
    mode: str  # "cpu", "wall" or "" when the file does not say
    unit: str  # "nanoseconds", or "samples" when weights are sample counts
    frames: List[Tuple[str, str, int]]  # (function, file, line)
    threads: List[Thread]

    def total(self) -> Tuple[int, int]:
        """(samples, weight) over every thread."""
        samples = weight = 0
        for t in self.threads:
            for n, w in t.stacks.values():
                samples += n
                weight += w
        return samples, weight


def _mode_of(title: str) -> str:
    m = re.match(r"spprof (\w+) profile", title)
    return m.group(1) if m else ""


def from_profile(profile: "Profile") -> Loaded:
    from ._tables import tables
    tab = tables(profile)
    frames = [(tab.symbols[s][0], tab.symbols[s][1], line) for s, line in tab.frames]
    # Named as the Speedscope writer names its profiles, so a file and its HTML agree.
    threads = [Thread(f"{name or 'Thread'} (tid {native_id})") for _, native_id, name in tab.threads]
    for th, st, w in zip(tab.thread, tab.stack, tab.weight_ns):
        threads[th].add(tab.stacks[st], 1, w)
    from .speedscope import _title
    return Loaded(_title(profile), profile.mode, "nanoseconds", frames, threads)


def load(path: str) -> Loaded:
    """Raises ValueError when the file is neither a sampled Speedscope file nor collapsed stacks."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raise ValueError(f"{path} is gzipped (pprof?); spprof reads Speedscope (.json) and collapsed files")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not text; spprof reads Speedscope (.json) and collapsed files") from None
    if text.lstrip().startswith("{"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from None
        return _from_speedscope(doc, path)
    return _from_collapsed(text, path)


def _from_speedscope(doc: Any, path: str) -> Loaded:
    if not isinstance(doc, dict) or not isinstance(doc.get("shared"), dict) or not isinstance(doc.get("profiles"), list):
        raise ValueError(f"{path} is JSON but not a Speedscope file (no shared frames or profiles)")
    frames = [(str(f.get("name", "?")), str(f.get("file", "")), int(f.get("line", 0) or 0))
              for f in doc["shared"].get("frames", [])]
    units = {p.get("unit", "none") for p in doc["profiles"]}
    # Mixed or unitless weights cannot be summed as time: count samples then.
    by_time = units <= set(_UNIT_NS) and len(units) <= 1
    threads = []
    for i, p in enumerate(doc["profiles"]):
        if p.get("type") != "sampled":
            raise ValueError(f"{path}: profile {i} is {p.get('type')!r}; spprof reads sampled profiles only")
        thread = Thread(str(p.get("name", f"profile {i}")))
        factor = _UNIT_NS.get(p.get("unit", "none"), 1)
        samples, weights = p.get("samples", []), p.get("weights", [])
        if len(samples) != len(weights):
            raise ValueError(f"{path}: profile {i} has {len(samples)} samples but {len(weights)} weights")
        for stack, w in zip(samples, weights):
            thread.add(tuple(stack), 1, int(round(w * factor)) if by_time else 1)
        threads.append(thread)
    title = str(doc.get("name", ""))
    return Loaded(title, _mode_of(title), "nanoseconds" if by_time else "samples", frames, threads)


def _from_collapsed(text: str, path: str) -> Loaded:
    ids: Dict[str, int] = {}
    frames: List[Tuple[str, str, int]] = []
    thread = Thread("all threads")
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        stack_text, _, count = line.rpartition(" ")
        if not stack_text or not count.isdigit():
            raise ValueError(f"{path}:{lineno}: not a collapsed stack line (`root;...;leaf COUNT`)")
        stack = []
        for part in stack_text.split(";"):
            if part not in ids:
                m = _COLLAPSED_FRAME.match(part)
                ids[part] = len(frames)
                frames.append((m.group(1), m.group(2), int(m.group(3))) if m else (part, "", 0))
            stack.append(ids[part])
        thread.add(tuple(stack), int(count), int(count))
    return Loaded(f"collapsed stacks from {path}", "", "samples", frames, [thread])
