"""Continuous profiling turned on by the environment alone, with no change to the program.

Installing spprof puts `spprof-auto.pth` in site-packages: at every interpreter start it imports
this module only when SPPROF_PUSH_URL or SPPROF_OUTPUT_DIR is set (and SPPROF_AUTO is not "0").
The SPPROF_* variables are those of spprof.continuous.ENV; SPPROF_APP_NAME defaults to the
program's name. A wrong setting is reported on stderr and the program runs unprofiled: a
profiler's configuration never stops an application from starting.
"""
from __future__ import annotations

import os
import re
import sys


def program_name(argv0: str) -> str:
    name = os.path.splitext(os.path.basename(argv0.rstrip("/")))[0] if argv0 and argv0 not in ("-c", "-m", "-") else ""
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", name).lstrip(".-") or "python"


def _launched_by_spprof() -> bool:
    # `spprof run` reads the same variables itself, with its own launcher frames trimmed.
    argv = getattr(sys, "orig_argv", None) or sys.argv
    return os.path.basename(sys.argv[0] if sys.argv else "") == "spprof" or any(
        a == "spprof" and i > 0 and argv[i - 1] == "-m" for i, a in enumerate(argv))


def start_from_env() -> bool:
    from . import continuous
    try:
        options = continuous.options_from_env(os.environ)
        if not options:
            return False
        options.setdefault("app_name", program_name(sys.argv[0] if sys.argv else ""))
        app_name = options.pop("app_name")
        continuous.start_continuous(app_name, **options)
    except (ValueError, TypeError, OSError, RuntimeError) as e:
        sys.stderr.write(f"spprof: continuous profiling from the environment is off: {e}\n")
        return False
    continuous.flush_on_sigterm()
    return True


if os.environ.get("SPPROF_AUTO", "1") != "0" and not _launched_by_spprof():
    start_from_env()
