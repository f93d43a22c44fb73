"""Speedscope JSON (https://www.speedscope.app/file-format-schema.json): the file is written
natively, straight from the compact tables; to_dict() builds the same document in Python."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Dict, List

from .._tables import profile_title, tables, thread_label
from .._version import __version__

if TYPE_CHECKING:
    from .._model import Profile

NAME = "speedscope"
EXTENSIONS = (".speedscope.json", ".json")
SCHEMA = "https://www.speedscope.app/file-format-schema.json"


def _exporter() -> str:
    return f"spprof {__version__}"


def _sampled(profile: "Profile") -> Any:
    if profile._data is None:
        raise ValueError("this Profile holds no sampled data to write")
    return profile._data


def write(profile: "Profile", path: str) -> None:
    data = _sampled(profile)
    labels = [thread_label(name, native_id) for _, native_id, name in data.threads()]
    data.write_speedscope(os.fsencode(path), profile_title(profile), _exporter(), labels)


def to_dict(profile: "Profile") -> Dict[str, Any]:
    """The document write() saves, as json.load would read it back."""
    _sampled(profile)
    tab = tables(profile)
    frames: List[Dict[str, Any]] = []
    for name, filename, line in tab.located_frames():
        frames.append({"name": name, "file": filename, "line": line} if filename else {"name": name})
    samples: List[List[List[int]]] = [[] for _ in tab.threads]
    weights: List[List[int]] = [[] for _ in tab.threads]
    for th, st, w in zip(tab.thread, tab.stack, tab.weight_ns):  # time order within each thread
        samples[th].append(list(tab.stacks[st]))
        weights[th].append(w)
    end = max(0, tab.end_ns - tab.start_ns)
    return {
        "$schema": SCHEMA,
        "name": tab.title,
        "exporter": _exporter(),
        "activeProfileIndex": 0,
        "shared": {"frames": frames},
        "profiles": [{"type": "sampled", "name": label, "unit": "nanoseconds", "startValue": 0, "endValue": end,
                      "samples": samples[i], "weights": weights[i]} for i, label in enumerate(tab.labels)],
    }
