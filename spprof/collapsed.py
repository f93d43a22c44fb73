"""Collapsed stacks for Brendan Gregg's FlameGraph: `root;...;leaf COUNT`, one line per stack."""
from __future__ import annotations

import array
from collections import Counter
from typing import TYPE_CHECKING, List

if TYPE_CHECKING:
    from ._model import Profile

EXTENSIONS = (".collapsed", ".folded")


def _clean(text: str) -> str:
    # ';' separates frames and a newline ends a record: neither may leak from a name.
    return text.replace(";", ":").replace("\n", " ").replace("\r", " ")


def to_text(profile: "Profile") -> str:
    data = profile._data
    if data is None:
        counts: Counter = Counter(
            tuple(f"{f.function_name} ({f.filename}:{f.lineno})" for f in s.frames) for s in profile.samples
        )
    else:
        symbols = data.symbols()
        frame_text = [
            f"{symbols[s][0]} ({symbols[s][1]}:{line})" if symbols[s][1] else symbols[s][0]
            for s, line in data.frames()
        ]
        stacks = data.stacks()
        per_stack = Counter(array.array("I", data.sample_columns()[3]))
        counts = Counter()
        for stack_id, n in per_stack.items():
            counts[tuple(frame_text[i] for i in stacks[stack_id])] += n
    lines: List[str] = [
        ";".join(_clean(f) for f in stack) + f" {n}" for stack, n in sorted(counts.items()) if stack
    ]
    return "\n".join(lines) + ("\n" if lines else "")


def write(profile: "Profile", path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(to_text(profile))
