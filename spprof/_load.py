"""Reads a profile back for `spprof report` and `spprof view`: a Speedscope file that spprof
wrote, or collapsed stacks, into the tables a live profile gives (spprof._tables)."""
from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Tuple

from ._tables import Tables, process_cpu_in

# Speedscope's time units, in nanoseconds
_UNIT_NS = {"nanoseconds": 1, "microseconds": 1_000, "milliseconds": 1_000_000, "seconds": 1_000_000_000}
_COLLAPSED_FRAME = re.compile(r"^(.*) \((.*):(\d+)\)$")


class _Builder:
    """Interns symbols and stacks as a file is read; frame ids stay the file's own."""

    def __init__(self) -> None:
        self.symbol_ids: Dict[Tuple[str, str], int] = {}
        self.frames: List[Tuple[int, int]] = []
        self.stack_ids: Dict[Tuple[int, ...], int] = {}
        self.labels: List[str] = []
        self.weight: List[int] = []
        self.thread: List[int] = []
        self.stack: List[int] = []
        self.counts: List[int] = []

    def frame(self, name: str, filename: str, line: int) -> int:
        symbol = self.symbol_ids.setdefault((name, filename), len(self.symbol_ids))
        self.frames.append((symbol, line))
        return len(self.frames) - 1

    def row(self, stack: Tuple[int, ...], samples: int, weight: int) -> None:
        self.thread.append(len(self.labels) - 1)
        self.stack.append(self.stack_ids.setdefault(stack, len(self.stack_ids)))
        self.counts.append(samples)
        self.weight.append(weight)

    def tables(self, title: str, mode: str, unit: str) -> Tables:
        return Tables([(name, filename, 0) for name, filename in self.symbol_ids], self.frames, list(self.stack_ids),
                      [(0, 0, label) for label in self.labels], self.labels, [0] * len(self.stack), self.weight,
                      self.thread, self.stack, self.counts, 0, 0, 0, 0, title, mode, unit,
                      process_cpu_in(title) if mode == "cpu" and unit == "nanoseconds" else 0)


def _mode_of(title: str) -> str:
    m = re.match(r"spprof (\w+) profile", title)
    return m.group(1) if m else ""


def load(path: str) -> Tables:
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


def _from_speedscope(doc: Any, path: str) -> Tables:
    if not isinstance(doc, dict) or not isinstance(doc.get("shared"), dict) or not isinstance(doc.get("profiles"), list):
        raise ValueError(f"{path} is JSON but not a Speedscope file (no shared frames or profiles)")
    out = _Builder()
    for f in doc["shared"].get("frames", []):
        out.frame(str(f.get("name", "?")), str(f.get("file", "")), int(f.get("line", 0) or 0))
    units = {p.get("unit", "none") for p in doc["profiles"]}
    # Mixed or unitless weights cannot be summed as time: count samples then.
    by_time = units <= set(_UNIT_NS) and len(units) <= 1
    for i, p in enumerate(doc["profiles"]):
        if p.get("type") != "sampled":
            raise ValueError(f"{path}: profile {i} is {p.get('type')!r}; spprof reads sampled profiles only")
        out.labels.append(str(p.get("name", f"profile {i}")))
        factor = _UNIT_NS.get(p.get("unit", "none"), 1)
        samples, weights = p.get("samples", []), p.get("weights", [])
        if len(samples) != len(weights):
            raise ValueError(f"{path}: profile {i} has {len(samples)} samples but {len(weights)} weights")
        for stack, w in zip(samples, weights):
            out.row(tuple(stack), 1, int(round(w * factor)) if by_time else 1)
    title = str(doc.get("name", ""))
    return out.tables(title, _mode_of(title), "nanoseconds" if by_time else "samples")


def _from_collapsed(text: str, path: str) -> Tables:
    ids: Dict[str, int] = {}
    out = _Builder()
    out.labels.append("all threads")
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
                ids[part] = out.frame(m.group(1), m.group(2), int(m.group(3))) if m else out.frame(part, "", 0)
            stack.append(ids[part])
        out.row(tuple(stack), int(count), int(count))
    return out.tables(f"collapsed stacks from {path}", "", "samples")
