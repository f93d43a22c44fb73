"""Continuous profiling: the profile cut into rolling windows while the sampler runs on, each
window a gzipped pprof pushed to Grafana Pyroscope or written to a folder.

Two threads of our own, both off the sampler and never in an application thread's way:
- the exporter cuts a window every `window_s` (the native cut drains without the GIL) and encodes
  it; it holds the GIL only while it encodes, in the interpreter's usual slices;
- the sender takes windows from a queue bounded in bytes and pushes them, retrying with backoff
  and jitter; when the bound is reached the oldest windows are dropped and counted.
"""
from __future__ import annotations

import atexit
import collections
import datetime as _dt
import logging
import os
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, List, Mapping, Optional, Tuple

from . import _native, _threads
from ._session import check_interval
from ._session import check_options as check_start_options
from ._session import start as start_sampling
from ._session import stop as stop_sampling
from .formats import pprof as _pprof
from ._model import Profile
from .folder_sink import FolderSink
from .pyroscope import PyroscopeSink, SendError, check_app_name, check_tags, check_url, parse_tags

log = logging.getLogger("spprof")

OWN_THREADS = ("spprof-export", "spprof-send")
MIN_WINDOW_S, MAX_WINDOW_S = 1.0, 3600.0
_BACKOFF_FIRST_S, _BACKOFF_MAX_S, _RETRY_AFTER_MAX_S = 1.0, 30.0, 300.0
MAX_ATTEMPTS = 5  # a window that failed this often is dropped (counted)


@dataclass(frozen=True)
class Options:
    app_name: str
    push_url: Optional[str]
    output_dir: Optional[str]
    tags: Dict[str, str]  # the user's, validated; hostname and pid are added per process
    default_tags: bool
    window_s: float
    interval_ms: float
    mode: str
    max_depth: int
    memory_limit_mb: float
    basic_auth: Optional[Tuple[str, str]]
    token: Optional[str]
    headers: Dict[str, str] = field(default_factory=dict)
    flush_timeout_s: float = 2.0
    timeout_s: float = 10.0
    max_files: int = 100
    max_mb: float = 100.0
    queue_mb: Optional[float] = None

    def process_tags(self) -> Dict[str, str]:
        tags = dict(self.tags)
        if self.default_tags:
            tags.setdefault("hostname", _hostname())
            tags.setdefault("pid", str(os.getpid()))
        return tags

    @property
    def queue_bytes(self) -> int:
        # The windows waiting to be sent count against memory_limit_mb: a quarter of it by default.
        if self.queue_mb is not None:
            return int(self.queue_mb * 1024 * 1024)
        return max(256 * 1024, int(self.memory_limit_mb * 1024 * 1024 / 4))


def _hostname() -> str:
    name = socket.gethostname() or "localhost"
    return "".join(c if c.isalnum() or c in "._-:/" else "_" for c in name)[:2048]


def _number(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number in [{low:g}, {high:g}], not {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def check_options(app_name: Any, *, push_url: Any = None, output_dir: Any = None, tags: Any = None,
                  default_tags: bool = True, window_s: Any = 10, interval_ms: Any = 10, mode: str = "cpu",
                  max_depth: int = 128, memory_limit_mb: Any = 100, basic_auth: Any = None, token: Any = None,
                  headers: Any = None, flush_timeout_s: Any = 2.0, timeout_s: Any = 10.0, max_files: Any = 100,
                  max_mb: Any = 100, queue_mb: Any = None) -> Options:
    """Every option of start_continuous(), checked before anything starts."""
    check_app_name(app_name)
    if (push_url is None) == (output_dir is None):
        raise ValueError("give exactly one of push_url (a Pyroscope server) and output_dir (a folder)")
    if push_url is not None:
        check_url(push_url)
    if output_dir is not None:
        output_dir = os.fspath(output_dir)
        if not os.path.isdir(output_dir):
            raise FileNotFoundError(f"output_dir {output_dir!r} is not a folder")
        if not os.access(output_dir, os.W_OK | os.X_OK):
            raise PermissionError(f"output_dir {output_dir!r} is not writable")
    user_tags = check_tags(tags or {})
    interval = check_interval(interval_ms)
    opts = check_start_options({"mode": mode, "max_depth": max_depth, "memory_limit_mb": memory_limit_mb})
    if basic_auth is not None:
        if (not isinstance(basic_auth, (tuple, list)) or len(basic_auth) != 2
                or not all(isinstance(x, str) for x in basic_auth)):
            raise TypeError("basic_auth must be a (user, password) pair of str")
        if ":" in basic_auth[0]:
            raise ValueError("basic_auth's user must not hold ':'")
        if token is not None:
            raise ValueError("give basic_auth or token, not both")
        basic_auth = (basic_auth[0], basic_auth[1])
    if token is not None and (not isinstance(token, str) or not token or any(c.isspace() for c in token)):
        raise ValueError("token must be a non-empty str without white space")
    checked_headers: Dict[str, str] = {}
    for k, v in dict(headers or {}).items():
        if not isinstance(k, str) or not isinstance(v, str) or not k or any(c in k for c in ":\r\n ") \
                or any(c in v for c in "\r\n"):
            raise ValueError(f"header {k!r}: {v!r} is not a valid HTTP header")
        checked_headers[k] = v
    if isinstance(max_files, bool) or not isinstance(max_files, int) or max_files < 1:
        raise ValueError(f"max_files must be a positive int, got {max_files!r}")
    return Options(
        app_name=app_name, push_url=push_url, output_dir=output_dir, tags=user_tags, default_tags=bool(default_tags),
        window_s=_number("window_s", window_s, MIN_WINDOW_S, MAX_WINDOW_S), interval_ms=interval,
        mode=opts["mode"], max_depth=opts["max_depth"], memory_limit_mb=opts["memory_limit_mb"],
        basic_auth=basic_auth, token=token, headers=checked_headers,
        flush_timeout_s=_number("flush_timeout_s", flush_timeout_s, 0, 600),
        timeout_s=_number("timeout_s", timeout_s, 0.1, 600), max_files=max_files,
        max_mb=_number("max_mb", max_mb, 0.001, 1 << 20),
        queue_mb=None if queue_mb is None else _number("queue_mb", queue_mb, 0.001, 1 << 20),
    )


# ---- environment variables (spprof run, the import-time hook)

ENV: Dict[str, Tuple[str, Callable[[str], Any]]] = {
    "SPPROF_PUSH_URL": ("push_url", str),
    "SPPROF_OUTPUT_DIR": ("output_dir", str),
    "SPPROF_APP_NAME": ("app_name", str),
    "SPPROF_TAGS": ("tags", parse_tags),
    "SPPROF_WINDOW_S": ("window_s", float),
    "SPPROF_INTERVAL_MS": ("interval_ms", float),
    "SPPROF_MODE": ("mode", str),
    "SPPROF_MEMORY_LIMIT_MB": ("memory_limit_mb", float),
    "SPPROF_BASIC_AUTH_USER": ("basic_auth_user", str),
    "SPPROF_BASIC_AUTH_PASSWORD": ("basic_auth_password", str),
    "SPPROF_TOKEN": ("token", str),
    "SPPROF_HEADERS": ("headers", parse_tags),
    "SPPROF_FLUSH_TIMEOUT_S": ("flush_timeout_s", float),
    "SPPROF_MAX_FILES": ("max_files", int),
    "SPPROF_MAX_MB": ("max_mb", float),
    "SPPROF_QUEUE_MB": ("queue_mb", float),
}


def options_from_env(environ: Mapping[str, str]) -> Dict[str, Any]:
    """The start_continuous() keyword arguments the SPPROF_* variables give (ValueError names the
    variable that is wrong). Empty when neither SPPROF_PUSH_URL nor SPPROF_OUTPUT_DIR is set."""
    if not environ.get("SPPROF_PUSH_URL") and not environ.get("SPPROF_OUTPUT_DIR"):
        return {}
    out: Dict[str, Any] = {}
    for var, (key, convert) in ENV.items():
        raw = environ.get(var)
        if raw is None or raw == "":
            continue
        try:
            out[key] = convert(raw)
        except ValueError as e:
            raise ValueError(f"{var}={raw!r}: {e}") from None
    user, password = out.pop("basic_auth_user", None), out.pop("basic_auth_password", None)
    if user is not None or password is not None:
        out["basic_auth"] = (user or "", password or "")
    return out


# ---- the session

@dataclass
class _Window:
    body: bytes
    clock: str
    from_unix_ns: int
    until_unix_ns: int
    attempts: int = 0
    not_before: float = 0.0  # monotonic


class Session:
    def __init__(self, options: Options, *, trim_launcher: bool = False) -> None:
        self.options = options
        self.trim_launcher = trim_launcher
        self.pid = os.getpid()
        self.tags = options.process_tags()
        self.clock = "wall" if options.mode == "wall" else "cpu"
        if options.push_url is not None:
            self.sink: Any = PyroscopeSink(options.push_url, options.app_name, self.tags, basic_auth=options.basic_auth,
                                           token=options.token, headers=options.headers, timeout_s=options.timeout_s)
        else:
            self.sink = FolderSink(options.output_dir or ".", options.app_name, options.max_files, options.max_mb)
        self._queue: Deque[_Window] = collections.deque()
        self._queued_bytes = 0
        self._cond = threading.Condition(threading.Lock())
        self._stop_cutting = threading.Event()
        self._stop_sending = False
        self._flushing_until: Optional[float] = None  # monotonic deadline of the last flush
        self._failing = False
        self.counts: Dict[str, Any] = {
            "windows_made": 0, "windows_empty": 0, "windows_sent": 0, "windows_retried": 0, "windows_dropped": 0,
            "windows_rejected": 0, "bytes_sent": 0, "bytes_queued": 0, "last_error": "", "encode_ns_max": 0,
            "cut_ns_max": 0,
        }
        self._in_flight: Optional[_Window] = None
        self._exporter: Optional[threading.Thread] = None
        self._sender: Optional[threading.Thread] = None

    # -- life

    def start(self) -> None:
        if isinstance(self.sink, FolderSink):
            self.sink.remove_leftovers()
        engine_mb = max(1.0, self.options.memory_limit_mb - self.options.queue_bytes / (1024 * 1024))
        start_sampling(self.options.interval_ms, mode=self.options.mode, max_depth=self.options.max_depth,
                       memory_limit_mb=engine_mb)
        self._exporter = threading.Thread(target=self._export_loop, name=OWN_THREADS[0], daemon=True)
        self._sender = threading.Thread(target=self._send_loop, name=OWN_THREADS[1], daemon=True)
        self._exporter.start()
        self._sender.start()
        # Their samples would be trimmed from every window: not taking them saves their clock reads.
        for t in (self._exporter, self._sender):
            _native.ignore_thread(t.ident or 0)

    def stop(self, timeout_s: Optional[float]) -> Dict[str, Any]:
        """Cuts the last window, stops sampling, and gives the sender until the deadline to send
        what is queued; what is left then is dropped (counted). Returns the final stats."""
        deadline = time.monotonic() + (self.options.flush_timeout_s if timeout_s is None else timeout_s)
        self._stop_cutting.set()
        if self._exporter is not None and self._exporter is not threading.current_thread():
            self._exporter.join(max(0.0, deadline - time.monotonic()))
        with self._cond:
            self._flushing_until = deadline
            self._cond.notify_all()
        try:
            self._cut(last=True)
        except RuntimeError:  # stopped meanwhile (spprof.stop() from elsewhere)
            pass
        try:
            stop_sampling()  # what it returns is empty: the last cut took every sample
        except RuntimeError:
            pass
        with self._cond:
            while self._queue and time.monotonic() < deadline:
                self._cond.wait(max(0.001, deadline - time.monotonic()))
            self._stop_sending = True
            self._in_flight = None  # a request still under way is given up with the rest
            self._drop_oldest(len(self._queue), "not sent before the exit deadline")
            self._cond.notify_all()
        # The sender may be inside a request it cannot leave: it is a daemon, never waited for past the deadline.
        if self._sender is not None:
            self._sender.join(max(0.0, deadline - time.monotonic()))
        return self.stats()

    def stats(self) -> Dict[str, Any]:
        with self._cond:
            out = dict(self.counts)
            out["bytes_queued"] = self._queued_bytes
            out["windows_queued"] = len(self._queue)
        out["sink"] = self.sink.describe
        return out

    # -- exporter thread

    def _export_loop(self) -> None:
        window = self.options.window_s
        next_cut = time.monotonic() + window
        while not self._stop_cutting.wait(max(0.0, next_cut - time.monotonic())):
            now = time.monotonic()
            next_cut += window
            if next_cut < now:  # suspended, or a long GC pause: the next window starts now
                next_cut = now + window
            try:
                self._cut(last=False)
            except RuntimeError:  # the profiler was stopped under us
                return
            except Exception as e:  # never let a bad window end the session
                self._note_failure(f"cannot make a window: {e!r}")

    def _cut(self, last: bool) -> None:
        t0 = time.perf_counter_ns()
        data = _native.cut(last)
        t1 = time.perf_counter_ns()
        profile = self._profile(data)
        empty = len(data) == 0  # after our own threads' samples went
        body = b"" if empty else _pprof.to_gzip(profile, thread_name_label=True)
        t2 = time.perf_counter_ns()
        with self._cond:
            self.counts["windows_made"] += 1
            self.counts["cut_ns_max"] = max(self.counts["cut_ns_max"], t1 - t0)
            self.counts["encode_ns_max"] = max(self.counts["encode_ns_max"], t2 - t1)
            if empty:  # nothing ran: nothing to store
                self.counts["windows_empty"] += 1
                return
            self._queue.append(_Window(body, self.clock, data.start_unix_ns, data.end_unix_ns))
            self._queued_bytes += len(body)
            self._drop_oldest(self._over_bound(), "the queue of unsent windows is full")
            self._cond.notify_all()

    def _profile(self, data: Any) -> Profile:
        for t in threading.enumerate():  # names given after a thread started count too
            _threads._record(t)
        _threads.name_threads(data)
        own = [i for i, (_, _, name) in enumerate(data.threads()) if name.startswith(OWN_THREADS)]
        roots: List[int] = []
        if self.trim_launcher:
            roots = [i for i, (name, file, _) in enumerate(data.symbols()) if _stops_or_launches(name, file)]
        if own or roots:
            data.trim(roots, own)
        return Profile(
            start_time=_dt.datetime.fromtimestamp(data.start_unix_ns / 1e9, _dt.timezone.utc),
            end_time=_dt.datetime.fromtimestamp(data.end_unix_ns / 1e9, _dt.timezone.utc),
            interval_ms=self.options.interval_ms, mode=self.options.mode, data=data,
        )

    # -- the queue (under self._cond)

    def _over_bound(self) -> int:
        n, size = 0, self._queued_bytes
        for w in self._queue:
            if size <= self.options.queue_bytes or n == len(self._queue) - 1:
                break
            size -= len(w.body)
            n += 1
        return n

    def _drop_oldest(self, n: int, why: str) -> None:
        for _ in range(n):
            # the window being sent stays: it is the sender's until it succeeds or fails
            i = 1 if self._queue and self._queue[0] is self._in_flight else 0
            if i >= len(self._queue):
                break
            w = self._queue[i]
            del self._queue[i]
            self._queued_bytes -= len(w.body)
            self.counts["windows_dropped"] += 1
        if n:
            self.counts["last_error"] = self.counts["last_error"] or why

    # -- sender thread

    def _send_loop(self) -> None:
        while True:
            with self._cond:
                while not self._stop_sending:
                    if self._queue:
                        wait = self._queue[0].not_before - time.monotonic()
                        if wait <= 0 or self._flushing_until is not None:
                            break
                        self._cond.wait(wait)
                    else:
                        self._cond.wait()
                if self._stop_sending:
                    return
                w = self._in_flight = self._queue[0]
                flushing = self._flushing_until
            timeout = None if flushing is None else flushing - time.monotonic()
            if timeout is not None and timeout <= 0:
                time.sleep(0.001)  # stop() drops what is left
                continue
            try:
                self._send(w, timeout)
            except SendError as e:
                self._failed(w, e)
            except Exception as e:  # a disk error, a bug: the window is not retried
                self._failed(w, SendError(f"{type(e).__name__}: {e}", False))
            else:
                with self._cond:
                    self._in_flight = None
                    if self._queue and self._queue[0] is w:  # else stop() gave it up and counted it
                        self._queue.popleft()
                        self._queued_bytes -= len(w.body)
                        self.counts["windows_sent"] += 1
                        self.counts["bytes_sent"] += len(w.body)
                    recovered, self._failing = self._failing, False
                    self._cond.notify_all()
                if recovered:
                    log.warning("spprof: continuous profiling sends to %s again", self.sink.describe)

    def _send(self, w: _Window, timeout: Optional[float]) -> None:
        if isinstance(self.sink, FolderSink):
            try:
                self.sink.write(w.body, w.from_unix_ns, w.until_unix_ns)
            except OSError as e:
                raise SendError(f"cannot write to {self.sink.describe}: {e}", True) from None
        else:
            self.sink.send(w.body, w.clock, w.from_unix_ns, w.until_unix_ns, self.options.interval_ms, timeout)

    def _failed(self, w: _Window, e: SendError) -> None:
        with self._cond:
            self._in_flight = None
            w.attempts += 1
            in_queue = bool(self._queue) and self._queue[0] is w
            if not in_queue:
                pass  # given up by stop() meanwhile
            elif e.retry and w.attempts < MAX_ATTEMPTS:
                self.counts["windows_retried"] += 1
                if e.after is not None:
                    delay = min(e.after, _RETRY_AFTER_MAX_S)
                else:  # exponential, with jitter so that a fleet does not retry in step
                    delay = min(_BACKOFF_MAX_S, _BACKOFF_FIRST_S * 2 ** (w.attempts - 1)) * random.uniform(0.5, 1.0)
                w.not_before = time.monotonic() + delay
            else:
                self._queue.popleft()
                self._queued_bytes -= len(w.body)
                self.counts["windows_dropped"] += 1
                if not e.retry:
                    self.counts["windows_rejected"] += 1
            self.counts["last_error"] = str(e)
            self._cond.notify_all()
        self._note_failure(str(e))

    def _note_failure(self, message: str) -> None:
        with self._cond:
            first, self._failing = not self._failing, True
            self.counts["last_error"] = message
        if first:  # once a streak: a dead receiver must not fill the application's log
            log.warning("spprof: continuous profiling: %s (windows are retried, then dropped; "
                        "spprof.continuous_stats() counts them; logged again only after a success)", message)


# ---- the public face (re-exported by spprof)

_lock = threading.Lock()
_session: Optional[Session] = None
_last_stats: Optional[Dict[str, Any]] = None


def start_continuous(app_name: str, *, push_url: Optional[str] = None, output_dir: Any = None,
                     tags: Optional[Mapping[str, str]] = None, window_s: float = 10, interval_ms: float = 10,
                     mode: str = "cpu", **options: Any) -> None:
    """Profiles the process all the time and ships a window every `window_s` seconds: pushed to a
    Grafana Pyroscope server (`push_url`, e.g. "http://pyroscope:4040") or written to a folder
    (`output_dir`). More options: tags, default_tags, max_depth, memory_limit_mb, basic_auth=(user,
    password), token, headers, flush_timeout_s, timeout_s, max_files, max_mb, queue_mb. Every option is
    checked before anything starts (ValueError, TypeError, OSError)."""
    _start(check_options(app_name, push_url=push_url, output_dir=output_dir, tags=tags, window_s=window_s,
                         interval_ms=interval_ms, mode=mode, **options))


def _stops_or_launches(name: str, file: str) -> bool:
    """The frames of `spprof run` beneath the program, and of the session's own stop that the
    launcher runs on the program's main thread after it (waiting for the exporter to end)."""
    from ._run import _is_launcher
    path = file.replace("\\", "/")
    return (_is_launcher(name, file) or path.endswith("/spprof/continuous.py")
            or (os.path.basename(path) == "threading.py" and name.split(".")[-1] in ("join", "_wait_for_tstate_lock")))


def _start(opts: Options, trim_launcher: bool = False) -> None:
    global _session
    with _lock:
        if _session is not None:
            raise RuntimeError("Continuous profiling already running")
        session = Session(opts, trim_launcher=trim_launcher)
        session.start()
        _session = session


def stop_continuous(timeout_s: Optional[float] = None) -> Dict[str, Any]:
    """Sends the last window (waiting at most `timeout_s`, default the session's flush_timeout_s)
    and stops; returns the final counts."""
    global _session, _last_stats
    with _lock:
        session, _session = _session, None
    if session is None:
        raise RuntimeError("Continuous profiling not running")
    _last_stats = session.stop(timeout_s)
    return _last_stats


def continuous_stats() -> Optional[Dict[str, Any]]:
    """The running session's counts (windows made, sent, retried, dropped, rejected, bytes sent,
    the last error), or None."""
    session = _session
    return session.stats() if session is not None else None


def is_continuous() -> bool:
    return _session is not None


def _after_fork_in_child() -> None:
    # A pre-fork worker profiles on its own, with its own pid tag; the parent's engine and threads
    # do not exist here (spprof's own fork handler abandoned them before this one runs).
    global _lock, _session
    _lock = threading.Lock()
    parent, _session = _session, None
    if parent is None or parent.pid == os.getpid():
        return
    try:
        _start(parent.options, parent.trim_launcher)
    except Exception as e:
        log.warning("spprof: continuous profiling could not restart in the forked process %d: %s", os.getpid(), e)


def _stop_at_exit() -> None:
    if _session is None or _session.pid != os.getpid():
        return
    try:
        stop_continuous()
    except Exception as e:
        log.warning("spprof: the last window could not be flushed at exit: %s", e)


os.register_at_fork(after_in_child=_after_fork_in_child)
# Registered after spprof's own handler (spprof imports this module last), so it runs before it.
atexit.register(_stop_at_exit)


def flush_on_sigterm() -> None:
    """SIGTERM (how Kubernetes stops a pod) flushes the last window, then ends the process as the
    signal would have. Only when nobody handles SIGTERM: a program's own handler, set before or
    after, stays in charge."""
    import signal
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        return

    def on_sigterm(signum: int, frame: Any) -> None:
        _stop_at_exit()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, on_sigterm)


class RunSession:
    """`spprof run --push/--output-dir`: the face _run.run() expects, for a continuous session."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.pending_signal: Optional[int] = None

    def start(self) -> None:
        if _session is not None:  # started by the environment hook: this one trims spprof's frames
            stop_continuous(0)
        _start(self.options, trim_launcher=True)
        flush_on_sigterm()

    def save_from_main(self) -> None:
        if _session is not None and _session.pid == os.getpid():
            stats = stop_continuous()
            import sys
            sys.stderr.write(f"spprof: {stats['windows_sent']} windows sent to {stats['sink']}, "
                             f"{stats['windows_dropped']} dropped\n")


def cli_options(push: Optional[str], output_dir: Optional[str], app_name: Optional[str], tags: List[str],
                window: Optional[float], interval_ms: float, mode: str, program: str,
                environ: Mapping[str, str]) -> Optional[Options]:
    """The continuous session `spprof run` asks for: its options over the SPPROF_* variables;
    None for a one-shot run."""
    kwargs = options_from_env(environ)
    if push is None and output_dir is None and not kwargs:
        return None
    if push is not None or output_dir is not None:
        kwargs.pop("push_url", None)
        kwargs.pop("output_dir", None)
        kwargs["push_url"], kwargs["output_dir"] = push, output_dir
    merged_tags = dict(kwargs.pop("tags", {}))
    for t in tags:
        merged_tags.update(parse_tags(t))
    kwargs["tags"] = merged_tags
    if window is not None:
        kwargs["window_s"] = window
    kwargs.setdefault("interval_ms", interval_ms)
    kwargs.setdefault("mode", mode)
    name = app_name or kwargs.pop("app_name", None) or program
    kwargs.pop("app_name", None)
    return check_options(name, **kwargs)
