"""The output formats by name, and Profile.save's dispatch through them. spprof.formats fills
the registry when the package is imported; the model reads it, so it never imports an exporter."""
from __future__ import annotations

import errno
import os
from types import ModuleType
from typing import Any, Dict, Optional

from ._files import path_str, replace_whole, written_in_place

# name -> the format's module: EXTENSIONS (lower case, most specific first) and
# write(profile, path); looked up at each save, so a format's write can be replaced (tests do).
FORMATS: Dict[str, ModuleType] = {}
DEFAULT = "speedscope"  # the format of a path whose extension names none (spprof.formats registers it)


def register(module: ModuleType) -> None:
    FORMATS[module.NAME] = module


def format_for(path: str, format: Optional[str]) -> str:
    if format is not None and not isinstance(format, str):
        raise TypeError(f"format must be a str, one of {', '.join(sorted(FORMATS))}; not {type(format).__name__}")
    if format is not None:
        if format not in FORMATS:
            raise ValueError(f"unknown format {format!r}; known formats: {', '.join(sorted(FORMATS))}")
        return format
    lower = path.lower()
    # The longest matching extension wins, so ".trace.json" is not taken for ".json".
    best, best_len = DEFAULT, 0
    for name, module in FORMATS.items():
        for ext in module.EXTENSIONS:
            if lower.endswith(ext) and len(ext) > best_len:
                best, best_len = name, len(ext)
    return best


def save(profile: Any, path: Any, format: Optional[str] = None) -> None:
    path = path_str(path)
    fmt = format_for(path, format)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "cannot save a profile over a directory", path)
    if written_in_place(path):
        FORMATS[fmt].write(profile, path)
        return

    def write(tmp: str) -> None:
        FORMATS[fmt].write(profile, tmp)

    replace_whole(path, write)
