"""The context manager and the decorator of api.md, on top of start() and stop()."""
from __future__ import annotations

import functools
from types import TracebackType
from typing import Any, Callable, Optional, Type, TypeVar, overload

F = TypeVar("F", bound=Callable[..., Any])


class Profiler:
    """`with Profiler(interval_ms=5) as p: ...` profiles the block; `p.profile` is the Profile
    afterwards (None while running). Arguments are checked here, before anything starts."""

    def __init__(self, interval_ms: float = 10, output_path: Any = None, **options: Any) -> None:
        from . import _check_arguments
        _check_arguments(interval_ms, output_path, options)
        self.interval_ms = interval_ms
        self.output_path = output_path
        self.options = options
        self.profile: Any = None

    def __enter__(self) -> "Profiler":
        from . import start
        self.profile = None
        start(self.interval_ms, self.output_path, **self.options)
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        from . import stop
        try:
            self.profile = stop()
        except OSError as e:  # the save failed: the profile is still kept, on self and on the error
            self.profile = getattr(e, "profile", None)
            if exc is None:
                raise
        # never swallows the block's own exception


@overload
def profile(func: F) -> F: ...
@overload
def profile(*, interval_ms: float = 10, output_path: Any = None, **options: Any) -> Callable[[F], F]: ...


def profile(func: Any = None, *, interval_ms: float = 10, output_path: Any = None, **options: Any) -> Any:
    """Profiles each call of the decorated function and saves to `output_path` after it.

    A call made while a profile is already running (a recursive call, or code already inside
    start()/stop() or a Profiler) joins that profile: it runs as it is and saves nothing.
    """
    from . import _check_arguments
    _check_arguments(interval_ms, output_path, options)

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            p = Profiler(interval_ms, output_path, **options)
            try:
                p.__enter__()
            except RuntimeError:  # a profile is running (maybe this very function's): join it
                return fn(*args, **kwargs)
            try:
                result = fn(*args, **kwargs)
            except BaseException as e:
                p.__exit__(type(e), e, e.__traceback__)
                raise
            p.__exit__(None, None, None)
            wrapper.last_profile = p.profile  # type: ignore[attr-defined]
            return result

        wrapper.last_profile = None  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate(func) if func is not None else decorate
