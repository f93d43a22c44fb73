"""The folder sink of continuous profiling: one `APP-FROM-UNTIL.pb.gz` per window (unix
milliseconds), written under a hidden temporary name and renamed, so that a reader (a sidecar,
`kubectl cp`) never sees a partial file; at most `max_files` files and `max_mb` megabytes of them,
the oldest removed first."""
from __future__ import annotations

import errno
import os
import re
from typing import List, Tuple

_TMP_SUFFIX = ".tmp"


class FolderSink:
    def __init__(self, folder: str, app_name: str, max_files: int, max_mb: float) -> None:
        self.folder, self.app_name = folder, app_name
        self.max_files, self.max_bytes = max_files, int(max_mb * 1024 * 1024)
        self.prefix = app_name.replace("/", "_") + "-"
        self._ours = re.compile(re.escape(self.prefix) + r"\d+-\d+\.pb\.gz\Z")
        self.describe = folder

    def remove_leftovers(self) -> None:
        """Temporary files of processes that died while writing (kill -9): never read, so removed."""
        try:
            names = os.listdir(self.folder)
        except OSError:
            return
        for name in names:
            if name.startswith("." + self.prefix) and name.endswith(_TMP_SUFFIX):
                pid = name[:-len(_TMP_SUFFIX)].rsplit(".", 1)[-1]
                if pid.isdigit() and not _alive(int(pid)):
                    _remove(os.path.join(self.folder, name))

    def write(self, body: bytes, from_unix_ns: int, until_unix_ns: int) -> str:
        name = f"{self.prefix}{from_unix_ns // 1_000_000}-{until_unix_ns // 1_000_000}.pb.gz"
        path = os.path.join(self.folder, name)
        tmp = os.path.join(self.folder, f".{name}.{os.getpid()}{_TMP_SUFFIX}")
        try:
            with open(tmp, "wb") as f:
                f.write(body)
            os.replace(tmp, path)
        except BaseException:
            _remove(tmp)
            raise
        self.enforce_bounds()
        return path

    def enforce_bounds(self) -> None:
        files: List[Tuple[str, int]] = []
        with os.scandir(self.folder) as it:
            for entry in it:
                if self._ours.match(entry.name):
                    try:
                        files.append((entry.name, entry.stat().st_size))
                    except OSError:
                        pass
        # The name's first number is the window's start: oldest first, whatever the mtimes say.
        files.sort(key=lambda f: int(f[0][len(self.prefix):].split("-", 1)[0]))
        total = sum(size for _, size in files)
        while files and (len(files) > self.max_files or total > self.max_bytes):
            name, size = files.pop(0)
            _remove(os.path.join(self.folder, name))
            total -= size


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as e:
        return e.errno == errno.EPERM
    return True


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
