"""The context manager and the decorator of api.md, on top of start() and stop()."""
from __future__ import annotations

import functools
import inspect
import sys
import warnings
from types import TracebackType
from typing import Any, Callable, Optional, Type, TypeVar, overload

from . import _native
from ._session import check_arguments, start_as, stop

F = TypeVar("F", bound=Callable[..., Any])


class Profiler:
    """`with Profiler(interval_ms=5) as p: ...` profiles the block; `p.profile` is the Profile
    afterwards (None while running). Arguments are checked here, before anything starts."""

    def __init__(self, interval_ms: float = 10, output_path: Any = None, **options: Any) -> None:
        check_arguments(interval_ms, output_path, options)
        self.interval_ms = interval_ms
        self.output_path = output_path
        self.options = options
        self.profile: Any = None

    def __enter__(self) -> "Profiler":
        self.profile = None
        start_as(self.interval_ms, self.output_path, self.options, owner="scoped")
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        try:
            self.profile = stop()
        except Exception as e:  # the save failed: the profile is still kept, on self and on the error
            self.profile = getattr(e, "profile", None)
            if exc is None:
                raise
        # never swallows the block's own exception

    # `async with Profiler() as p:` in a coroutine: the same start and stop, which do not block
    # the loop beyond saving to output_path when one was given.
    async def __aenter__(self) -> "Profiler":
        return self.__enter__()

    async def __aexit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                        tb: Optional[TracebackType]) -> None:
        self.__exit__(exc_type, exc, tb)


@overload
def profile(func: F) -> F: ...
@overload
def profile(*, interval_ms: float = 10, output_path: Any = None, **options: Any) -> Callable[[F], F]: ...


def profile(func: Any = None, *, interval_ms: float = 10, output_path: Any = None, **options: Any) -> Any:
    """Profiles each call of the decorated function and saves to `output_path` after it.

    A call made while a profile is already running (a recursive call, or code already inside
    start()/stop() or a Profiler) joins that profile: it runs as it is and saves nothing.
    On an `async def`, each awaited call is profiled (with whatever else the process runs meanwhile,
    other tasks included) and the decorated function stays a coroutine function.
    Profiling never changes what the function does: when profiling cannot start (the output
    folder is gone, no memory reader) the function runs unprofiled, and when the save fails the
    function's result still comes back; both warn (RuntimeWarning), the profile is kept on
    `last_profile`.
    """
    check_arguments(interval_ms, output_path, options)

    def decorate(fn: F) -> F:
        def begin() -> Optional[Profiler]:
            """The call's own Profiler, started; None when the call joins a running profile or
            runs unprofiled."""
            if _native.session() is not None:  # a profile is running (maybe this very function's): join it
                return None
            try:
                p = Profiler(interval_ms, output_path, **options)  # checks output_path again
                p.__enter__()
                return p
            except Exception as e:  # another thread's profile started meanwhile (joined), or a failure
                if not (isinstance(e, RuntimeError) and "already running" in str(e)):
                    _warn(f"spprof: could not profile {fn.__qualname__} ({e}); it ran unprofiled")
                return None

        def end(p: Profiler) -> None:
            _exit_quietly(p, fn)
            wrapper.last_profile = p.profile  # type: ignore[attr-defined]

        if inspect.iscoroutinefunction(fn):
            # The profile spans the awaited call, not the creation of the coroutine; being an
            # `async def` itself, the wrapper stays a coroutine function for inspect and asyncio.
            # Other tasks that run while it awaits are in the profile too (it profiles the process).
            @functools.wraps(fn)
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                p = begin()
                if p is None:
                    return await fn(*args, **kwargs)
                try:
                    return await fn(*args, **kwargs)
                finally:
                    end(p)
        else:
            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                p = begin()
                if p is None:
                    return fn(*args, **kwargs)
                try:
                    return fn(*args, **kwargs)
                finally:
                    end(p)

        wrapper.last_profile = None  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate(func) if func is not None else decorate


def _warn(message: str) -> None:
    # A warning turned into an error (-W error) must not replace the function's result either.
    try:
        warnings.warn(message, RuntimeWarning, stacklevel=4)
    except Exception:
        sys.stderr.write(message + "\n")


def _exit_quietly(p: Profiler, fn: Callable[..., Any]) -> None:
    """Stops the decorator's profile; a failure (the save) warns instead of replacing the
    function's result or exception."""
    try:
        p.profile = stop()
    except Exception as e:
        p.profile = getattr(e, "profile", None)
        _warn(f"spprof: the profile of {fn.__qualname__} could not be saved ({e}); it is on {fn.__qualname__}.last_profile")
