"""Collapsed stacks for Brendan Gregg's FlameGraph: `root;...;leaf COUNT`, one line per stack."""
from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Dict, List, Tuple

from .._tables import tables, thread_label

if TYPE_CHECKING:
    from .._model import Profile

NAME = "collapsed"
EXTENSIONS = (".collapsed", ".folded")


def _clean(text: str) -> str:
    # ';' separates frames and a newline ends a record: neither may leak from a name.
    return text.replace(";", ":").replace("\n", " ").replace("\r", " ")


def frame_text(name: str, filename: str, line: int, merge_lines: bool = False) -> str:
    """`function (file:line)`, or `function (file)` with merge_lines; a frame without a file
    (spprof's own markers such as `<truncated>`) is its name alone."""
    if not filename:
        return _clean(name)
    return _clean(f"{name} ({filename})" if merge_lines else f"{name} ({filename}:{line})")


def to_text(profile: "Profile", *, merge_lines: bool = False, thread_root: bool = False) -> str:
    """merge_lines: one frame per function instead of per line; thread_root: the thread
    (`name (native id)`) as the root frame of each stack."""
    tab = tables(profile)
    texts = [frame_text(name, filename, line, merge_lines) for name, filename, line in tab.located_frames()]
    stack_texts = [tuple(texts[i] for i in stack) for stack in tab.stacks]
    counts: Dict[Tuple[str, ...], int] = Counter()
    if thread_root:
        roots = [_clean(thread_label(name, native_id, tid="")) for _, native_id, name in tab.threads]
        per_pair: Dict[Tuple[int, int], int] = Counter(zip(tab.thread, tab.stack))
        for (th, st), n in per_pair.items():
            counts[(roots[th],) + stack_texts[st]] += n
    else:
        for st, n in Counter(tab.stack).items():
            counts[stack_texts[st]] += n
    lines: List[str] = [";".join(stack) + f" {n}" for stack, n in sorted(counts.items()) if stack]
    return "\n".join(lines) + ("\n" if lines else "")


def write(profile: "Profile", path: str) -> None:
    # A lone surrogate (a non-UTF-8 file name) is written as Python's stderr shows it: caf\udce9
    with open(path, "w", encoding="utf-8", errors="backslashreplace") as f:
        f.write(to_text(profile))
