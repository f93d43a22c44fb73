"""`spprof run`: runs a script or module under the profiler as `python` would run it (same argv,
__main__, sys.path[0], exit status, death by signal) and saves the profile however it ends."""
from __future__ import annotations

import atexit
import os
import runpy
import shlex
import signal
import sys
import threading
import types
import zipfile
from importlib.machinery import SourceFileLoader
from typing import Any, Callable, List, Optional

from . import _format_registry, _session
from ._model import Profile

# How to look at each format, for the message after a run
OPEN_HINTS = {
    "speedscope": "spprof report {q}  |  spprof view {q}  |  drag it onto speedscope.app",
    "collapsed": "spprof report {q}  |  flamegraph.pl {q} > flame.svg",
    "html": "open it in a browser (one file, no network needed)",
    "pprof": "go tool pprof -http=: {q}",
    "chrome_trace": "load it in Perfetto UI or chrome://tracing",
}


OWN_THREADS = ("spprof-status", "spprof-duration")


def _is_launcher(name: str, file: str) -> bool:
    path = file.replace("\\", "/")
    return (path.endswith(("/spprof/cli.py", "/spprof/_run.py", "/spprof/__main__.py", "/spprof/_session.py",
                           "/runpy.py"))
            or path == "<frozen runpy>" or (name == "<module>" and os.path.basename(path) == "spprof"))


def trim_own_frames(profile: Profile) -> None:
    """Stacks start at the program, as they would under plain python: the frames of `spprof run`
    and runpy beneath it go, and so do the samples of spprof's own threads, before any format
    is written."""
    data = profile._data
    if data is None:
        return
    launcher = [i for i, (name, file, _) in enumerate(data.symbols()) if _is_launcher(name, file)]
    own = [i for i, (_, _, name) in enumerate(data.threads()) if name.startswith(OWN_THREADS)]
    data.trim(launcher, own)


def _die_by(signum: int) -> None:
    """Ends the process by `signum` with its default action, as an unhandled one would."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    # The default action may be held off (a blocked signal): exit as a shell reports it.
    os._exit(128 + signum)


class Session:
    """One profiled run: sampling, the status line, the save that happens exactly once."""

    def __init__(self, path: str, fmt: str, interval_ms: float, mode: str, duration: Optional[float],
                 shown: Optional[str] = None) -> None:
        self.path, self.fmt = path, fmt  # path: absolute, resolved before the program runs
        self._shown = shown or path
        self.interval_ms, self.mode, self.duration = interval_ms, mode, duration
        self._lock = threading.Lock()
        self._saved = False
        self._main_saving = False
        self.pending_signal: Optional[int] = None
        self._status_stop = threading.Event()
        self._status: Optional[threading.Thread] = None
        self._timer: Optional[threading.Timer] = None
        self._pid = os.getpid()

    def start(self) -> None:
        # Asyncio tasks are named only when asyncio is imported as profiling starts (csrc/layout.c),
        # and the program has not run yet.
        import asyncio  # noqa: F401
        _session.start_as(self.interval_ms, None, {"mode": self.mode}, owner="run")
        # A program that sets its own SIGTERM handler later replaces this one, as it should.
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, self._on_sigterm)
        if sys.stderr.isatty():
            self._status = threading.Thread(target=self._status_loop, name=OWN_THREADS[0], daemon=True)
            self._status.start()
        if self.duration is not None:
            self._timer = threading.Timer(self.duration, self.save)
            self._timer.name = OWN_THREADS[1]
            self._timer.daemon = True
            self._timer.start()
        # Registered before the program's own handlers, so it runs after them, as the
        # interpreter's own death by SIGINT comes after every atexit handler.
        atexit.register(self._at_exit)

    def _status_loop(self) -> None:
        while not self._status_stop.wait(0.5):
            st = _session.stats()
            if st is None:
                break
            sys.stderr.write(f"\r\x1b[2Kspprof: {st.duration_ms / 1000:.1f} s, {st.collected_samples} samples, "
                             f"{st.dropped_samples} dropped")
            sys.stderr.flush()

    def _stop_status(self) -> None:
        if self._status is not None:
            self._status_stop.set()
            self._status.join()
            self._status = None
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()

    def save(self) -> None:
        """Stops sampling and writes the profile, once, from whichever thread gets here first."""
        # A forked child that runs on to the program's end has no profile of its own to save.
        if os.getpid() != self._pid:
            return
        with self._lock:
            if self._saved:
                return
            self._saved = True
            if self._timer is not None and threading.current_thread() is not self._timer:
                self._timer.cancel()
            self._stop_status()
            try:
                profile = _session.stop_as("run")
            except RuntimeError:
                sys.stderr.write("spprof: the program stopped the profiler itself; nothing saved\n")
                return
            trim_own_frames(profile)
            try:
                _format_registry.save(profile, self.path, self.fmt)
            except OSError as e:
                sys.stderr.write(f"spprof: could not write {self.path}: {e}\n")
                return
            # The native tables know their length; Profile.samples would build every Sample.
            n = len(profile._data) if profile._data is not None else len(profile.samples)
            seconds = (profile.end_time - profile.start_time).total_seconds()
            # The name as typed while it still means the file written, else the absolute path.
            shown = self._shown if _abspath_now(self._shown) == self.path else self.path
            hint = OPEN_HINTS.get(self.fmt, "").format(q=shlex.quote(shown))
            sys.stderr.write(f"spprof: {n} samples over {seconds:.1f} s written to {shown} ({self.fmt})\n"
                             + (f"spprof: to look at it: {hint}\n" if hint else ""))
            sys.stderr.flush()

    def save_from_main(self) -> None:
        """The save at the program's end: a SIGINT or SIGTERM meanwhile waits until it is done."""
        self._main_saving = True
        # Only Python's own Ctrl-C handler is held off; one the program set stays in force.
        old_int = signal.getsignal(signal.SIGINT)
        if old_int is signal.default_int_handler:
            signal.signal(signal.SIGINT, self._defer)
        try:
            self.save()
        finally:
            if old_int is signal.default_int_handler:
                signal.signal(signal.SIGINT, old_int)
            if signal.getsignal(signal.SIGTERM) == self._on_sigterm:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
            self._main_saving = False

    def _defer(self, signum: int, frame: Optional[types.FrameType]) -> None:
        self.pending_signal = signum

    def _on_sigterm(self, signum: int, frame: Optional[types.FrameType]) -> None:
        if self._main_saving:
            self._defer(signum, frame)
            return
        self.save()
        _die_by(signum)

    def _at_exit(self) -> None:
        if self.pending_signal is not None:
            _die_by(self.pending_signal)


def _abspath_now(path: str) -> Optional[str]:
    try:
        return os.path.abspath(path)
    except OSError:  # the current folder was removed
        return None


def _strip_own_frames(tb: Optional[types.TracebackType]) -> Optional[types.TracebackType]:
    # The program's traceback starts at its own first frame, as under plain `python`.
    own = {__file__, runpy.__file__, "<frozen runpy>"}
    while tb is not None and tb.tb_frame.f_code.co_filename in own:
        tb = tb.tb_next
    return tb


def _print_uncaught(e: BaseException) -> None:
    # The hook reads the exception's own traceback on 3.11+, the argument before.
    tb = _strip_own_frames(e.__traceback__)
    sys.excepthook(type(e), e.with_traceback(tb), tb)


def _is_folder_or_zip(path: str) -> bool:
    return os.path.isdir(path) or (not path.endswith((".py", ".pyw")) and zipfile.is_zipfile(path))


def _run_script(path: str) -> None:
    abspath = os.path.abspath(path)
    if _is_folder_or_zip(path):
        runpy.run_path(path, run_name="__main__")  # its __main__.py, with the path first in sys.path
        return
    with open(abspath, "rb") as f:
        source = f.read()
    # What the interpreter gives a script's module: __file__ absolute, argv[0] as typed.
    module = types.ModuleType("__main__")
    module.__dict__.update(__file__=abspath, __cached__=None, __package__=None, __spec__=None,
                           __loader__=SourceFileLoader("__main__", abspath), __builtins__=__builtins__)
    sys.modules["__main__"] = module
    code = compile(source, abspath, "exec", dont_inherit=True)
    exec(code, module.__dict__)


def _join_threads() -> None:
    # The interpreter waits for non-daemon threads before it ends; so does the profile.
    me = threading.current_thread()
    for t in threading.enumerate():
        if t is not me and not t.daemon:
            t.join()


def set_path0(folder: str) -> None:
    # Under -P or -I (3.11+) the interpreter puts no folder first, and neither do we.
    if not getattr(sys.flags, "safe_path", False):
        sys.path[0] = folder


def run(session: Session, script: Optional[str], module: Optional[str], args: List[str]) -> int:
    """Runs the program; returns its exit status, or leaves a signal pending for the exit."""
    target: Callable[[], Any]
    if module is not None:
        name = module
        sys.argv = ["-m", *args]
        set_path0(os.getcwd())
        target = lambda: runpy.run_module(name, run_name="__main__", alter_sys=True)
    elif script is not None:
        path = script
        sys.argv = [path, *args]
        set_path0(os.path.abspath(path) if _is_folder_or_zip(path) else os.path.dirname(os.path.realpath(path)))
        target = lambda: _run_script(path)
    else:
        raise ValueError("a script or a module is needed")
    session.start()
    status = 0
    try:
        target()
    except SystemExit as e:
        status = _exit_status(e.code)
    except KeyboardInterrupt as e:
        _print_uncaught(e)
        session.pending_signal = signal.SIGINT
        status = 128 + signal.SIGINT
    except BaseException as e:
        _print_uncaught(e)
        status = 1
    try:
        _join_threads()
    except KeyboardInterrupt:
        session.pending_signal = signal.SIGINT
        status = 128 + signal.SIGINT
    session.save_from_main()
    return status


def _exit_status(code: Any) -> int:
    # sys.exit()'s rules: None is 0, an int is itself, anything else is printed and is 1.
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")
    return 1
