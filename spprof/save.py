"""Profile.save: picks the format, writes to a temporary file beside the target and renames it,
so a failed or interrupted save never leaves half a file."""
from __future__ import annotations

import errno
import os
import re
import tempfile
from types import ModuleType
from typing import TYPE_CHECKING, Any, Dict, Optional

from . import chrome_trace, collapsed, html, pprof, speedscope

if TYPE_CHECKING:
    from ._model import Profile

# Each format is one module with EXTENSIONS (lower case, most specific first) and
# write(profile, path). The first format is the default for an unknown extension.
FORMATS: Dict[str, ModuleType] = {"speedscope": speedscope, "collapsed": collapsed, "pprof": pprof,
                                   "chrome_trace": chrome_trace, "html": html}


def path_str(path: Any, name: str = "path") -> str:
    """A path given as str, bytes or os.PathLike, as str; a TypeError naming `name` otherwise."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"{name} must be a str, bytes or os.PathLike path, not {type(path).__name__}")
    raw = os.fspath(path)
    return raw if isinstance(raw, str) else os.fsdecode(raw)


# spprof's temporary files carry the pid of the process writing them: `.spprof-PID-XXXXXXXX.tmp`
# (a save) and `.spprof-probe-PID-XXXXXXXX` (output_path's check).
_TEMP = re.compile(r"\.spprof-(?:probe-)?(\d+)-[A-Za-z0-9_]+(?:\.tmp)?")


def temp_file(folder: str, kind: str = "") -> str:
    """A new empty temporary file of spprof's own naming in `folder` (kind: "" or "probe")."""
    remove_stale_temps(folder)
    fd, tmp = tempfile.mkstemp(prefix=f".spprof-{kind + '-' if kind else ''}{os.getpid()}-",
                               suffix=".tmp" if not kind else "", dir=folder)
    os.close(fd)
    return tmp


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process, or no way to tell: it may own the file
        return True
    return True


def remove_stale_temps(folder: str) -> None:
    """Removes the temporary files a killed save left behind: spprof's naming only, and only
    those whose process is gone."""
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                m = _TEMP.fullmatch(entry.name)
                if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
                    try:
                        os.unlink(entry.path)
                    except OSError:
                        pass
    except OSError:  # an unreadable folder: nothing to tidy, the save itself will say what fails
        pass


def written_in_place(path: str) -> bool:
    """A device or a pipe (/dev/stdout, a FIFO) is written in place, never renamed over."""
    return os.path.exists(path) and not os.path.isfile(path) and not os.path.isdir(path)


def format_for(path: str, format: Optional[str]) -> str:
    if format is not None and not isinstance(format, str):
        raise TypeError(f"format must be a str, one of {', '.join(sorted(FORMATS))}; not {type(format).__name__}")
    if format is not None:
        if format not in FORMATS:
            raise ValueError(f"unknown format {format!r}; known formats: {', '.join(sorted(FORMATS))}")
        return format
    lower = path.lower()
    # The longest matching extension wins, so ".trace.json" is not taken for ".json".
    best, best_len = "speedscope", 0
    for name, module in FORMATS.items():
        for ext in module.EXTENSIONS:
            if lower.endswith(ext) and len(ext) > best_len:
                best, best_len = name, len(ext)
    return best


def save(profile: "Profile", path: Any, format: Optional[str] = None) -> None:
    path = path_str(path)
    fmt = format_for(path, format)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "cannot save a profile over a directory", path)
    if written_in_place(path):
        FORMATS[fmt].write(profile, path)
        return
    tmp = temp_file(os.path.dirname(os.path.abspath(path)))
    try:
        FORMATS[fmt].write(profile, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
