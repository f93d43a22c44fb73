"""3.13+ runs a class's Python __init__ under a frame of the interpreter's own code object
(_Py_InitCleanup), named "__init__" in a file "__init__": that frame is hidden, and the program's
code is never hidden for having that name and file name too."""
import spprof
from conftest import spin

NAMED_LIKE_THE_TRAMPOLINE = compile(
    "def __init__(n):\n    total = 0\n    for i in range(n):\n        total += i\n    return total\n",
    "__init__", "exec")


def test_program_code_named_like_the_trampoline_is_kept():
    namespace = {}
    exec(NAMED_LIKE_THE_TRAMPOLINE, namespace)
    work = namespace["__init__"]
    spprof.start(interval_ms=1)
    for _ in range(20):
        work(200_000)
    profile = spprof.stop()
    kept = [s for s in profile.samples
            if any(f.function_name == "__init__" and f.filename == "__init__" for f in s.frames)]
    assert len(kept) > 10, f"{len(kept)} of {len(profile.samples)} samples show the program's __init__"


class Point:
    def __init__(self, n):
        self.total = spin(n)


def instantiate_points():
    for _ in range(60):  # specialised after the first calls: from then on under the trampoline
        Point(60_000)


def test_the_init_trampoline_is_hidden():
    spprof.start(interval_ms=1)
    instantiate_points()
    profile = spprof.stop()
    in_init = [s for s in profile.samples if any(f.function_name.endswith("__init__") for f in s.frames)]
    assert len(in_init) > 10
    for s in in_init:
        assert not any(f.filename == "__init__" for f in s.frames), [f.function_name for f in s.frames]
        names = [f.function_name.rsplit(".", 1)[-1] for f in s.frames]
        i = names.index("__init__")
        assert names[i - 1] == "instantiate_points", names  # the caller, then __init__ itself
