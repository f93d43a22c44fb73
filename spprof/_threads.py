"""Thread names and native ids, learnt from `threading` without any call in the threads.

`threading.Thread._set_native_id` runs in every new thread before its target (3.8+). Wrapping
it for the time a profile runs records each thread's name and native id as it starts; 3.9 and
3.10 keep no native id in the thread state, so the sampler learns it from here. The `name`
property's setter is wrapped too, so a thread that renames itself and ends is known by its new
name.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Dict, Optional, Tuple

from . import _native

# (ident, native_id) -> name, and ident -> name for threads whose native id is unknown
_names: Dict[Tuple[int, int], str] = {}
_names_by_ident: Dict[int, str] = {}
# What the wrapper calls first. Never reset to None: a thread that looked the wrapper up just
# before uninstall() may still be about to call it, and must still get its native id set.
_original: Optional[Callable[[threading.Thread], None]] = getattr(threading.Thread, "_set_native_id", None)
_name_property = threading.Thread.__dict__.get("name")


def _record(thread: threading.Thread) -> None:
    ident = thread.ident
    if ident is None:
        return
    native = getattr(thread, "native_id", None) or 0
    if ident == threading.get_ident():
        # after os.fork() 3.9 and 3.10 keep the parent's native id on the thread that forked.
        # (Not current_thread(): in a starting thread it makes a _DummyThread, which calls this.)
        native = threading.get_native_id()
    _names[(ident, native)] = thread.name
    if not native:  # by ident alone only then: idents are reused as soon as a thread ends
        _names_by_ident[ident] = thread.name
    if native:
        _native.register_native_id(ident, native)


def _set_native_id(self: threading.Thread) -> None:
    original = _original
    if original is not None:
        original(self)
    try:
        _record(self)
    except Exception:  # never let the profiler break a thread's start
        pass


def _set_name(self: threading.Thread, name: str) -> None:
    assert isinstance(_name_property, property) and _name_property.fset is not None
    _name_property.fset(self, name)
    try:
        _record(self)
    except Exception:
        pass


def install() -> None:
    """Records the threads alive now and every thread started until `uninstall()`."""
    global _original
    _names.clear()
    _names_by_ident.clear()
    for thread in threading.enumerate():
        _record(thread)
    current = getattr(threading.Thread, "_set_native_id", None)
    if current is not None and current is not _set_native_id:
        _original = current
        setattr(threading.Thread, "_set_native_id", _set_native_id)
    if isinstance(_name_property, property) and threading.Thread.__dict__.get("name") is _name_property:
        setattr(threading.Thread, "name", property(_name_property.fget, _set_name, None, _name_property.__doc__))


def uninstall() -> None:
    for thread in threading.enumerate():  # the latest names of the threads still alive
        _record(thread)
    if _original is not None and getattr(threading.Thread, "_set_native_id", None) is _set_native_id:
        setattr(threading.Thread, "_set_native_id", _original)
    current = threading.Thread.__dict__.get("name")
    if isinstance(current, property) and current.fset is _set_name:
        setattr(threading.Thread, "name", _name_property)


def name_of(ident: int, native_id: int) -> str:
    # A `_thread` thread that never called threading.current_thread() has no Python name (with
    # one it is a _DummyThread, 'Dummy-N', recorded above): its native id tells it apart.
    return _names.get((ident, native_id)) or _names_by_ident.get(ident) or f"Thread-{native_id or ident}"




def name_threads(data: Any) -> None:
    """Names the Python threads of native tables; a thread Python does not know came named by
    the kernel (its `comm`) and keeps that name."""
    for i, (ident, native_id, name) in enumerate(data.threads()):
        if not name:
            data.set_thread_name(i, name_of(ident, native_id))
