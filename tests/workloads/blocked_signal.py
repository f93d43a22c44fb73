"""A process-directed signal that the program blocks (to take it with sigtimedwait) while spprof
samples: the kernel must not deliver it to one of spprof's threads, where it would kill."""
import json
import os
import signal
import time

import spprof

spprof.start(interval_ms=1)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGUSR2})
time.sleep(0.05)
got = []
for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGUSR1):
    os.kill(os.getpid(), sig)
    info = signal.sigtimedwait({sig}, 5)
    got.append(info.si_signo if info else None)
time.sleep(0.3)
spprof.stop()
print(json.dumps({"got": got}))
