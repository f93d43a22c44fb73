"""Speedscope JSON (https://www.speedscope.app/file-format-schema.json), written natively."""
from __future__ import annotations

import json
import os
import tempfile
from typing import TYPE_CHECKING, Any, Dict

if TYPE_CHECKING:
    from ._model import Profile

EXTENSIONS = (".speedscope.json", ".json")


def _title(profile: "Profile") -> str:
    return f"spprof {profile.mode} profile, {profile.interval_ms:g} ms, {profile.start_time.isoformat()}"


def write(profile: "Profile", path: str) -> None:
    from . import __version__
    if profile._data is None:
        raise ValueError("this Profile holds no sampled data to write")
    profile._data.write_speedscope(os.fsencode(path), _title(profile), f"spprof {__version__}")


def to_dict(profile: "Profile") -> Dict[str, Any]:
    fd, tmp = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        write(profile, tmp)
        with open(tmp, encoding="utf-8") as f:
            result: Dict[str, Any] = json.load(f)
        return result
    finally:
        os.unlink(tmp)
