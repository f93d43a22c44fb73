"""fork() made through libc (as an extension or a C library does), bypassing os.register_at_fork,
while spprof samples: the child must not inherit the engine (stop() there says not running, a
new profile works), must hold none of spprof's descriptors, and the parent goes on."""
import ctypes
import json
import os
import sys

import spprof
from busy import work

libc = ctypes.CDLL(None, use_errno=True)


def spprof_descriptors():
    names = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("anon_inode:") or target.startswith("/proc/"):
            names.append(target)
    return names


spprof.start(interval_ms=1)
work(0.1)
r, w = os.pipe()
pid = libc.fork()
if pid == 0:
    out = {"active": spprof.is_active(), "descriptors": spprof_descriptors()}
    try:
        spprof._native.stop()
        out["native_stop"] = "returned"
    except RuntimeError as e:
        out["native_stop"] = str(e)
    try:  # wall mode: Python's own after-fork code did not run, its thread states keep the parent's tids
        spprof.start(interval_ms=1, mode="wall")
        work(0.2)
        out["child_samples"] = len(spprof.stop().samples)
    except Exception as e:  # noqa: BLE001 - reported to the parent
        out["child_error"] = repr(e)
    os.write(w, json.dumps(out).encode())
    os._exit(0)
os.close(w)
work(0.2)
_, status = os.waitpid(pid, 0)
child = json.loads(os.read(r, 65536).decode() or "{}")
profile = spprof.stop()
print(json.dumps({"child": child, "status": status, "parent_samples": len(profile.samples)}))
