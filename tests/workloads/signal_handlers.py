"""faulthandler on, the application's own SIGSEGV/SIGBUS handlers: spprof must leave every
handler as it found it (compared at the C level with sigaction) and print nothing."""
import ctypes
import faulthandler
import json
import signal
import threading

import spprof
from busy import spin

faulthandler.enable()


def app_handler(signum, frame):
    raise SystemExit(f"signal {signum}")


signal.signal(signal.SIGSEGV, app_handler)
signal.signal(signal.SIGBUS, app_handler)
signal.signal(signal.SIGALRM, app_handler)
signal.signal(signal.SIGCHLD, app_handler)

libc = ctypes.CDLL(None, use_errno=True)
SIGNALS = [signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT,
           signal.SIGPROF, signal.SIGALRM, signal.SIGCHLD, signal.SIGVTALRM, signal.SIGUSR1]


def c_handlers():
    """Handler, the kernel's 64-bit mask and the flags of every signal's struct sigaction
    (glibc fills only that much of its 128-byte sa_mask)."""
    out = {}
    for sig in SIGNALS:
        buf = ctypes.create_string_buffer(256)
        assert libc.sigaction(int(sig), None, buf) == 0
        out[int(sig)] = (buf.raw[:16] + buf.raw[136:140]).hex()
    return out


def python_handlers():
    return {int(s): repr(signal.getsignal(s)) for s in SIGNALS}


before_c, before_py = c_handlers(), python_handlers()
spprof.start(interval_ms=1)
during_c = c_handlers()
reader = spprof.stats().reader
t = threading.Thread(target=spin, args=(4_000_000,))
t.start()
spin(4_000_000)
t.join()
profile = spprof.stop()
after_c, after_py = c_handlers(), python_handlers()
changed = sorted({s for s in before_c if before_c[s] != after_c[s] or before_c[s] != during_c[s]}
                 | {s for s in before_py if before_py[s] != after_py[s]})
print(json.dumps({"changed": changed, "faulthandler": faulthandler.is_enabled(),
                  "samples": len(profile.samples), "reader": reader}))
