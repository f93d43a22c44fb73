"""Files spprof writes: paths as str, its own temporary files (and the stale ones a killed save
left), and the write-then-rename that keeps a target whole."""
from __future__ import annotations

import os
import re
import tempfile
from typing import Any, Callable


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


def replace_whole(path: str, write: Callable[[str], None]) -> None:
    """Calls write(tmp) on a temporary file beside `path`, then renames it over `path`: a failed
    or interrupted write never leaves half a file, and the old file stays whole."""
    tmp = temp_file(os.path.dirname(os.path.abspath(path)))
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
