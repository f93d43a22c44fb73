"""Python signal handlers that run inside spprof.start()/stop() on the thread calling them.
argv[1]: "raise_after_start" (a handler raises just after the engine started),
"stop_in_handler" (a handler calls stop() while the main thread is inside start() or stop()),
"sigterm_under_run" (run by `spprof run`: SIGTERM arrives while @profile holds the module's lock).
Prints one JSON line; a deadlock shows as the test's timeout."""
import json
import signal
import sys

import spprof
from spprof import _native, _session
from busy import spin


def lock_held():
    lock = _session._lock  # read each time: a fork replaces it
    return lock._is_owned() if hasattr(lock, "_is_owned") else lock.locked()


def patch(name, before=None, after=None, under_lock=True):
    """Replaces _native.NAME; `before`/`after` run once, around the first call made under the
    module's lock (or the first call at all)."""
    original = getattr(_native, name)
    fired = []

    def wrapper(*args, **kwargs):
        armed = not fired and (lock_held() or not under_lock)
        if armed:
            fired.append(name)
            if before:
                before()
        result = original(*args, **kwargs)
        if armed and after:
            after()
        return result

    setattr(_native, name, wrapper)
    return lambda: setattr(_native, name, original)


def outcome(call):
    try:
        r = call()
        return type(r).__name__
    except Exception as e:
        return f"{type(e).__name__}: {e}"


case = sys.argv[1]
out = {}
if case == "raise_after_start":
    def on_alarm(signum, frame):
        raise ValueError("from the handler")
    signal.signal(signal.SIGALRM, on_alarm)
    undo = patch("start", after=lambda: signal.raise_signal(signal.SIGALRM))
    out["start"] = outcome(lambda: spprof.start(interval_ms=1))
    undo()
    out["active"] = spprof.is_active()
    spin(200_000)
    out["stop"] = outcome(spprof.stop)
    out["start_again"] = outcome(lambda: spprof.start(interval_ms=1))
    out["stop_again"] = outcome(spprof.stop)
elif case == "stop_in_handler":
    handled = []

    def on_usr1(signum, frame):
        handled.append(outcome(spprof.stop))
    signal.signal(signal.SIGUSR1, on_usr1)
    raise_usr1 = lambda: signal.raise_signal(signal.SIGUSR1)  # noqa: E731  (runs the handler now)
    undo = patch("stop", before=raise_usr1)
    spprof.start(interval_ms=1)
    spin(200_000)
    out["stop"] = outcome(spprof.stop)
    undo()
    out["handler_in_stop"] = handled[:]
    undo = patch("start", after=raise_usr1)
    out["start"] = outcome(lambda: spprof.start(interval_ms=1))
    undo()
    out["handler_in_start"] = handled[1:]
    out["active"] = spprof.is_active()
    out["start_again"] = outcome(lambda: spprof.start(interval_ms=1))
    out["stop_again"] = outcome(spprof.stop)
elif case == "sigterm_under_run":
    @spprof.profile
    def work():
        return spin(200_000)

    fired = []

    def term():  # `spprof run`'s handler saves and dies, at the decorator's first look at the engine
        if not fired:
            fired.append(1)
            signal.raise_signal(signal.SIGTERM)
    for name in ("is_active", "session"):
        if hasattr(_native, name):
            patch(name, before=term, under_lock=False)
    spin(1_000_000)
    work()
    print("still alive after SIGTERM", flush=True)
print(json.dumps(out), flush=True)
