"""Runs a command with process_vm_readv refused (EPERM) by a seccomp filter, as some container
sandboxes do; spprof must then fall back to another fault-proof reader. Needs python3-seccomp."""
import errno
import os
import sys

import seccomp

f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)  # sets no_new_privs, so it needs no privilege
f.add_rule(seccomp.ERRNO(errno.EPERM), "process_vm_readv")
f.load()
os.execvp(sys.argv[1], sys.argv[1:])
