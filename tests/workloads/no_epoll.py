"""start() where a seccomp filter refuses epoll_create1 and epoll_create (EPERM), as some sandboxes
do: a clear OSError from start(), never an abort on spprof's thread. x86_64 only."""
import ctypes
import json
import struct

import spprof

libc = ctypes.CDLL(None, use_errno=True)
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
BPF_LD_W_ABS, BPF_JEQ_K, BPF_RET_K = 0x20, 0x15, 0x06
SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, EPERM = 0x7FFF0000, 0x00050000, 1
NR_EPOLL_CREATE, NR_EPOLL_CREATE1 = 213, 291


def insn(code, jt, jf, k):
    return struct.pack("HBBI", code, jt, jf, k)


prog = b"".join([
    insn(BPF_LD_W_ABS, 0, 0, 0),                     # the system call's number
    insn(BPF_JEQ_K, 2, 0, NR_EPOLL_CREATE1),
    insn(BPF_JEQ_K, 1, 0, NR_EPOLL_CREATE),
    insn(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
    insn(BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | EPERM),
])


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


fprog = SockFprog(len(prog) // 8, prog)
assert libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
assert libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) == 0, ctypes.get_errno()
out = {}
try:
    spprof.start(interval_ms=1)
except OSError as e:
    out["start_error"] = str(e)
else:
    out["samples"] = len(spprof.stop().samples)
out["active"] = spprof.is_active()
print(json.dumps(out))
