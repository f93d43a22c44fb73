"""spprof: an in-process sampling profiler for every Python thread, without signals or ptrace.

    import spprof
    spprof.start(interval_ms=10)
    ...
    profile = spprof.stop()
    profile.save("profile.json")
"""
from __future__ import annotations

import atexit
import datetime as _dt
import errno
import os
import sys
import tempfile
import threading
from typing import Any, Dict, Optional, Tuple

from ._subinterpreters import in_subinterpreter

if in_subinterpreter():
    raise ImportError("spprof profiles the main interpreter only: import and start it there, "
                      "not in a sub-interpreter")

from . import _native, _threads  # noqa: E402
from ._model import Frame, Profile, ProfilerStats, Sample
from .save import path_str, written_in_place

__version__ = "0.1.0"
__all__ = ["start", "stop", "is_active", "stats", "Profiler", "profile", "Profile", "Sample", "Frame",
           "ProfilerStats", "__version__"]

_MODES = ("cpu", "wall")
_lock = threading.Lock()
_session: Optional[Dict[str, Any]] = None


def _check_interval(interval_ms: Any) -> float:
    if isinstance(interval_ms, bool) or not isinstance(interval_ms, (int, float)):
        raise TypeError(f"interval_ms must be a number in [1, 1000], not {type(interval_ms).__name__}")
    if not (1 <= interval_ms <= 1000):
        raise ValueError(f"interval_ms must be in [1, 1000] ms, got {interval_ms!r}")
    return float(interval_ms)


def _check_options(options: Dict[str, Any]) -> Dict[str, Any]:
    known = {"mode": "cpu", "max_depth": 128, "memory_limit_mb": 100}
    unknown = set(options) - set(known)
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}; known: {', '.join(known)}")
    out = {**known, **options}
    if out["mode"] not in _MODES:
        raise ValueError(f"mode must be 'cpu' or 'wall', got {out['mode']!r}")
    depth = out["max_depth"]
    if isinstance(depth, bool) or not isinstance(depth, int):
        raise TypeError(f"max_depth must be an int in [1, 4096], not {type(depth).__name__}")
    if not 1 <= depth <= 4096:
        raise ValueError(f"max_depth must be in [1, 4096], got {depth}")
    mem = out["memory_limit_mb"]
    if isinstance(mem, bool) or not isinstance(mem, (int, float)):
        raise TypeError(f"memory_limit_mb must be a number in [1, 1048576], not {type(mem).__name__}")
    if not 1 <= mem <= 1 << 20:
        raise ValueError(f"memory_limit_mb must be in [1, 1048576], got {mem}")
    return out


def _check_output_path(output_path: Any) -> Optional[str]:
    if output_path is None:
        return None
    path = path_str(output_path, "output_path")
    if os.path.isdir(path):
        raise IsADirectoryError(f"output_path {path!r} is a directory")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"output_path folder {folder!r} does not exist")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise PermissionError(f"output_path {path!r} is not writable")
    if written_in_place(path):
        return path
    # A file made and removed: the only test that holds for root, read-only mounts and sysfs alike
    try:
        fd, probe = tempfile.mkstemp(prefix=".spprof-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise PermissionError(errno.EACCES, f"output_path folder {folder!r} is not writable ({e.strerror})",
                              path) from e
    return path


def _check_arguments(interval_ms: Any, output_path: Any,
                     options: Dict[str, Any]) -> Tuple[float, Optional[str], Dict[str, Any]]:
    """Every argument of start(), Profiler and profile, checked before anything starts."""
    interval = _check_interval(interval_ms)
    opts = _check_options(options)
    return interval, _check_output_path(output_path), opts


def start(interval_ms: float = 10, output_path: Any = None, **options: Any) -> None:
    """Starts sampling every Python thread of the process every `interval_ms` milliseconds."""
    global _session
    interval, path, opts = _check_arguments(interval_ms, output_path, options)
    with _lock:
        if _native.is_active():
            raise RuntimeError("Profiler already running")
        _threads.install()
        try:
            _native.start(interval, opts["mode"], opts["max_depth"], int(opts["memory_limit_mb"] * 1024 * 1024))
        except BaseException:
            _threads.uninstall()
            raise
        _session = {"path": path, "mode": opts["mode"], "interval_ms": interval_ms,
                    "start": _dt.datetime.now(_dt.timezone.utc)}


def stop() -> Profile:
    """Stops sampling and returns the Profile; saves it to the start()'s output_path if given."""
    global _session
    with _lock:
        if not _native.is_active() or _session is None:
            raise RuntimeError("Profiler not running")
        data = _native.stop()
        session, _session = _session, None
        _threads.uninstall()
    for i, (ident, native_id, _) in enumerate(data.threads()):
        data.set_thread_name(i, _threads.name_of(ident, native_id))
    counters = data.counters()
    profile = Profile(
        start_time=_dt.datetime.fromtimestamp(data.start_unix_ns / 1e9, _dt.timezone.utc),
        end_time=_dt.datetime.fromtimestamp(data.end_unix_ns / 1e9, _dt.timezone.utc),
        interval_ms=session["interval_ms"],
        dropped_count=counters.get("dropped_samples", 0),
        mode=session["mode"],
        data=data,
        counters=counters,
    )
    if session["path"] is not None:
        try:
            profile.save(session["path"])
        except OSError as e:
            e.profile = profile  # type: ignore[attr-defined]  # the profile is never lost
            raise
    return profile


def is_active() -> bool:
    return bool(_native.is_active())


def stats() -> Optional[ProfilerStats]:
    s = _native.stats()
    if s is None:
        return None
    process = s["process_cpu_ns"]
    return ProfilerStats(
        collected_samples=s["collected_samples"],
        dropped_samples=s["dropped_samples"],
        duration_ms=s["duration_ns"] / 1e6,
        overhead_estimate_pct=100.0 * (s["sampler_cpu_ns"] + s["collector_cpu_ns"]) / process if process else 0.0,
        torn_walks=s["torn_walks"],
        missed_ticks=s["missed_ticks"],
        threads_seen=s["threads_seen"],
        bytes_held=s["bytes_held"],
        reader=s["reader"],
    )


def _after_fork_in_child() -> None:
    # The child has none of the parent's threads: it starts with no profile and can start its own.
    # The parent's output_path stays the parent's: the child never writes it.
    global _lock, _session
    _lock = threading.Lock()  # another thread may have held it at the fork
    _session = None
    _native.after_fork_child()
    _threads.uninstall()


def _stop_at_exit() -> None:
    # A profile still running at interpreter exit is stopped, and saved when it has an output_path.
    if not is_active():
        return
    try:
        stop()
    except RuntimeError:  # another thread stopped it meanwhile
        pass
    except OSError as e:
        print(f"spprof: the profile could not be saved at exit: {e}", file=sys.stderr)


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_stop_at_exit)

from ._api import Profiler, profile  # noqa: E402  (they use the functions above)
