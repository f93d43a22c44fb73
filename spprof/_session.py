"""The profiling session: the arguments' checks, start() and stop() and the state between them
(who owns the running profile, what `spprof run` left joined), and the fork and exit hooks."""
from __future__ import annotations

import atexit
import datetime as _dt
import errno
import os
import sys
import threading
from typing import Any, Dict, Optional, Tuple

from . import _native, _threads
from ._files import path_str, temp_file, written_in_place
from ._model import Profile, ProfilerStats

_MODES = ("cpu", "wall")
# Serialises start() and stop() between threads. Re-entrant: a signal handler that calls them on
# the thread already inside one runs on (the engine's state and its session change together in
# one native call, which no Python handler can split), where a plain lock would deadlock.
_lock = threading.RLock()
_exiting = False  # spprof's exit handler ran: nothing started from now on would be saved
# `spprof run`'s session once it stopped, while start()s that joined it still have a stop() to come
_ended_run: Optional[Dict[str, Any]] = None


def check_interval(interval_ms: Any) -> float:
    if isinstance(interval_ms, bool) or not isinstance(interval_ms, (int, float)):
        raise TypeError(f"interval_ms must be a number in [1, 1000], not {type(interval_ms).__name__}")
    if not (1 <= interval_ms <= 1000):
        raise ValueError(f"interval_ms must be in [1, 1000] ms, got {interval_ms!r}")
    return float(interval_ms)


def check_options(options: Dict[str, Any]) -> Dict[str, Any]:
    known = {"mode": "cpu", "max_depth": 128, "memory_limit_mb": 100, "native_threads": True}
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
    if not isinstance(out["native_threads"], bool):
        raise TypeError(f"native_threads must be True or False, not {type(out['native_threads']).__name__}")
    return out


def check_output_path(output_path: Any) -> Optional[str]:
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
    # Resolved now: a program that changes its folder still gets the file that was checked.
    path = os.path.abspath(path)
    if written_in_place(path):
        return path
    # A file made and removed: the only test that holds for root, read-only mounts and sysfs alike
    try:
        os.unlink(temp_file(folder, "probe"))
    except OSError as e:
        raise PermissionError(errno.EACCES, f"output_path folder {folder!r} is not writable ({e.strerror})",
                              path) from e
    return path


def check_arguments(interval_ms: Any, output_path: Any,
                     options: Dict[str, Any]) -> Tuple[float, Optional[str], Dict[str, Any]]:
    """Every argument of start(), Profiler and profile, checked before anything starts."""
    interval = check_interval(interval_ms)
    opts = check_options(options)
    return interval, check_output_path(output_path), opts


def start(interval_ms: float = 10, output_path: Any = None, **options: Any) -> None:
    """Starts sampling every Python thread of the process every `interval_ms` milliseconds."""
    start_as(interval_ms, output_path, options)


def start_as(interval_ms: Any, output_path: Any, options: Dict[str, Any], owner: str = "start") -> None:
    """`owner`: "start" for start(), "scoped" for Profiler and @profile (always stopped by their
    own exit), "run" for `spprof run`, whose profile a start() in the program joins."""
    interval, path, opts = check_arguments(interval_ms, output_path, options)
    if _exiting and owner == "start":
        raise RuntimeError("spprof.start() called after spprof's exit handler ran: the profile would never be "
                           "stopped or saved. Stop it before this handler returns (use `with spprof.Profiler(...)`), "
                           "or register this handler before importing spprof")
    with _lock:
        running = _native.session()
        if running is not None and running["owner"] == "run" and owner != "run":
            _join_run(running, path)
            return
        if running is not None:
            raise RuntimeError("Profiler already running")
        _threads.install()
        session = {"path": path, "mode": opts["mode"], "interval_ms": interval_ms, "owner": owner, "joined": 0}
        try:
            _native.start(interval, opts["mode"], opts["max_depth"], int(opts["memory_limit_mb"] * 1024 * 1024),
                          session, opts["native_threads"])
        except BaseException:
            if not _native.is_active():
                _threads.uninstall()
            raise


def _join_run(running: Dict[str, Any], path: Optional[str]) -> None:
    # The program's own start() under `spprof run`: it joins the running profile, which
    # `spprof run` saves at the end; its stop() gives back an empty Profile.
    running["joined"] += 1
    if not running.get("told"):
        running["told"] = True
        where = f"; {path} will not be written" if path else ""
        sys.stderr.write("spprof: start() joins the profile of `spprof run`, saved when the program ends"
                         f"{where}; the matching stop() returns an empty Profile\n")


def stop() -> Profile:
    """Stops sampling and returns the Profile; saves it to the start()'s output_path if given."""
    return stop_as()


def stop_as(owner: str = "start") -> Profile:
    global _ended_run
    with _lock:
        # A start() that joined `spprof run`'s profile gets an empty Profile from its stop(),
        # also when `spprof run` stopped first (--duration).
        joined = _native.session() or _ended_run
        if owner != "run" and joined is not None and joined["joined"] > 0:
            joined["joined"] -= 1
            now = _dt.datetime.now(_dt.timezone.utc)
            return Profile(start_time=now, end_time=now, interval_ms=joined["interval_ms"], mode=joined["mode"])
        try:
            data, session = _native.stop()
        except RuntimeError:
            raise RuntimeError("Profiler not running") from None
        _ended_run = session if session["joined"] else None
        try:
            _threads.uninstall()
        except Exception:  # names only: the profile is kept whatever they do
            pass
    return _finish(data, session)


def _finish(data: Any, session: Dict[str, Any]) -> Profile:
    """The Profile of a stopped engine. Nothing here may lose it: a failure is raised with the
    Profile on the exception (`e.profile`)."""
    profile = Profile(
        start_time=_dt.datetime.fromtimestamp(data.start_unix_ns / 1e9, _dt.timezone.utc),
        end_time=_dt.datetime.fromtimestamp(data.end_unix_ns / 1e9, _dt.timezone.utc),
        interval_ms=session["interval_ms"],
        mode=session["mode"],
        data=data,
    )
    try:
        data.trim([], [])  # frames no sample refers to leave the tables
        _threads.name_threads(data)
        counters = data.counters()
        object.__setattr__(profile, "counters", counters)
        object.__setattr__(profile, "dropped_count", counters.get("dropped_samples", 0))
        if session["path"] is not None:
            profile.save(session["path"])
    except BaseException as e:
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
    live = sys.modules.get(__package__ + ".continuous")  # only once started: never imported here
    windows = (live.continuous_stats() if live is not None else None) or {}
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
        tasks_named=s["tasks_named"],
        tasks_off=s["tasks_off"],
        **{k: windows[k] for k in ("windows_made", "windows_sent", "windows_retried", "windows_dropped",
                                   "bytes_sent", "last_error") if k in windows},
    )


def _after_fork_in_child() -> None:
    # The child has none of the parent's threads: it starts with no profile and can start its own.
    # The parent's output_path stays the parent's: the child never writes it.
    global _lock, _ended_run
    _lock = threading.RLock()  # another thread may have held it at the fork
    _ended_run = None
    _native.after_fork_child()
    _threads.uninstall()


def _stop_at_exit() -> None:
    # A profile still running at interpreter exit is stopped, and saved when it has an output_path.
    global _exiting
    _exiting = True
    if not is_active():
        return
    try:
        stop_as("run")
    except RuntimeError:  # another thread stopped it meanwhile
        pass
    except OSError as e:
        print(f"spprof: the profile could not be saved at exit: {e}", file=sys.stderr)


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_stop_at_exit)
