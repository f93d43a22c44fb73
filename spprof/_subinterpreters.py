"""Whether this code runs in a sub-interpreter. spprof samples the main interpreter only, and its
native module (single-phase init) deadlocks when it is first imported in a sub-interpreter, so
the package refuses to import there with a clear error."""
import importlib
from typing import Any


def in_subinterpreter() -> bool:
    for name in ("_interpreters", "_xxsubinterpreters"):  # 3.13+, 3.9-3.12 (private modules)
        try:
            interpreters: Any = importlib.import_module(name)
        except ImportError:
            continue
        try:
            return bool(interpreters.get_current() != interpreters.get_main())
        except Exception:  # noqa: BLE001 - when in doubt, import as before
            return False
    return False
