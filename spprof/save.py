"""Profile.save: picks the format, writes to a temporary file beside the target and renames it,
so a failed or interrupted save never leaves half a file."""
from __future__ import annotations

import os
import tempfile
from typing import TYPE_CHECKING, Any, Optional

from . import collapsed, speedscope

if TYPE_CHECKING:
    from ._model import Profile

FORMATS = {"speedscope": speedscope.EXTENSIONS, "collapsed": collapsed.EXTENSIONS}


def format_for(path: str, format: Optional[str]) -> str:
    if format is not None:
        if format not in FORMATS:
            raise ValueError(f"unknown format {format!r}; known formats: {', '.join(sorted(FORMATS))}")
        return format
    lower = path.lower()
    for name, extensions in FORMATS.items():
        if lower.endswith(extensions):
            return name
    return "speedscope"


def save(profile: "Profile", path: Any, format: Optional[str] = None) -> None:
    path = os.fspath(path)
    fmt = format_for(path, format)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".spprof-", suffix=".tmp", dir=folder)
    try:
        if fmt == "speedscope":
            os.close(fd)
            speedscope.write(profile, tmp)
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(collapsed.to_text(profile))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
