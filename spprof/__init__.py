"""spprof: an in-process sampling profiler for every Python thread, without signals or ptrace.

    import spprof
    spprof.start(interval_ms=10)
    ...
    profile = spprof.stop()
    profile.save("profile.json")
"""
from __future__ import annotations

from typing import Any

from ._subinterpreters import in_subinterpreter

if in_subinterpreter():
    raise ImportError("spprof profiles the main interpreter only: import and start it there, "
                      "not in a sub-interpreter")

from . import formats  # noqa: E402,F401  (registers the output formats Profile.save dispatches to)
from ._api import Profiler, profile  # noqa: E402
from ._model import Frame, Profile, ProfilerStats, Sample  # noqa: E402
from ._session import is_active, start, stats, stop  # noqa: E402
from ._version import __version__  # noqa: E402

__all__ = ["start", "stop", "is_active", "stats", "Profiler", "profile", "Profile", "Sample", "Frame",
           "ProfilerStats", "start_continuous", "stop_continuous", "continuous_stats", "__version__"]


def __getattr__(name: str) -> Any:
    # Continuous profiling is imported on first use: it brings logging, sockets and HTTP along.
    # (Not `from . import continuous`: that asks this very function for the attribute first.)
    if name in ("start_continuous", "stop_continuous", "continuous_stats", "continuous"):
        import importlib
        module = importlib.import_module(".continuous", __name__)
        return module if name == "continuous" else getattr(module, name)
    raise AttributeError(f"module 'spprof' has no attribute {name!r}")
