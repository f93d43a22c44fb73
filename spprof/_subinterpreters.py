"""Whether this code runs in a sub-interpreter. spprof samples the main interpreter only, and its
native module (single-phase init) deadlocks when it is first imported in a sub-interpreter, so
the package refuses to import there with a clear error."""


def in_subinterpreter() -> bool:
    try:
        import _interpreters as interpreters  # 3.13+
    except ImportError:
        try:
            import _xxsubinterpreters as interpreters  # type: ignore[no-redef]  # 3.9-3.12
        except ImportError:
            return False
    try:
        return bool(interpreters.get_current() != interpreters.get_main())
    except Exception:  # noqa: BLE001 - a private module: when in doubt, import as before
        return False
