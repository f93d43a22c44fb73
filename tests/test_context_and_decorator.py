"""Profiler and @profile as api.md and the quickstart promise them."""
import json
import os
import threading

import pytest

import spprof


def expensive_computation(n=1_500_000):
    total = 0
    for i in range(n):
        total += i * i
    return total


def test_profiler_context_manager(tmp_path):
    with spprof.Profiler(interval_ms=5) as p:
        assert spprof.is_active() and p.profile is None
        expensive_computation()
    assert not spprof.is_active()
    assert p.profile is not None and p.profile.samples
    p.profile.save(tmp_path / "profile.json")
    assert json.loads((tmp_path / "profile.json").read_text())["profiles"]


def test_profiler_stops_and_reraises_when_the_block_raises(tmp_path):
    path = tmp_path / "p.json"
    with pytest.raises(ZeroDivisionError):
        with spprof.Profiler(interval_ms=1, output_path=path) as p:
            expensive_computation(300_000)
            1 / 0
    assert not spprof.is_active()
    assert p.profile is not None and path.exists()


def test_profiler_checks_arguments_before_starting(tmp_path):
    with pytest.raises(ValueError, match="interval_ms"):
        spprof.Profiler(interval_ms=0)
    with pytest.raises(FileNotFoundError):
        spprof.Profiler(output_path=tmp_path / "no" / "p.json")
    assert not spprof.is_active()


def test_decorator_with_arguments_saves_after_each_call(tmp_path):
    path = tmp_path / "compute.json"

    @spprof.profile(output_path=str(path), interval_ms=1)
    def heavy_computation(n):
        """Sums squares."""
        return expensive_computation(n)

    assert heavy_computation.__name__ == "heavy_computation"
    assert heavy_computation.__doc__ == "Sums squares."
    assert heavy_computation(1_000_000) == expensive_computation(1_000_000)
    assert path.exists() and not spprof.is_active()
    first = path.stat().st_mtime_ns
    os.utime(path, ns=(0, 0))
    heavy_computation(200_000)
    assert path.stat().st_mtime_ns != 0
    assert first > 0


def test_bare_decorator_returns_and_raises_like_the_function():
    @spprof.profile
    def f(x):
        if x < 0:
            raise KeyError(x)
        return x * 2

    assert f(21) == 42
    assert f.last_profile is not None
    with pytest.raises(KeyError):
        f(-1)
    assert not spprof.is_active()


def test_recursive_decorated_function_joins_its_own_profile():
    @spprof.profile(interval_ms=1)
    def fact(n):
        expensive_computation(20_000)
        return 1 if n <= 1 else n * fact(n - 1)

    assert fact(30) == fact.__wrapped__(30)  # __wrapped__ calls back into the decorated fact
    assert not spprof.is_active()
    names = {f.function_name for s in fact.last_profile.samples for f in s.frames}
    assert any("fact" in n for n in names)


def test_decorated_function_inside_a_running_profile_joins_it():
    @spprof.profile(interval_ms=1)
    def inner():
        return expensive_computation(300_000)

    spprof.start(interval_ms=1)
    inner()
    assert spprof.is_active()  # the inner call did not stop the outer profile
    profile = spprof.stop()
    assert any(f.function_name.endswith("inner") for s in profile.samples for f in s.frames)


def test_decorated_function_called_from_threads_at_once():
    @spprof.profile(interval_ms=1)
    def work():
        return expensive_computation(200_000)

    results, errors = [], []

    def call():
        try:
            results.append(work())
        except Exception as e:  # any error here is a failure of the decorator
            errors.append(e)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 6
    assert not spprof.is_active()


def test_decorator_whose_output_folder_is_gone_still_runs_the_function(tmp_path):
    folder = tmp_path / "gone"
    folder.mkdir()
    calls = []

    @spprof.profile(interval_ms=1, output_path=folder / "p.json")
    def work(x):
        calls.append(x)
        return x * 2

    folder.rmdir()
    with pytest.warns(RuntimeWarning, match="ran unprofiled"):
        assert work(21) == 42
    assert calls == [21] and not spprof.is_active()


def test_decorator_whose_save_fails_returns_and_keeps_the_profile():
    @spprof.profile(interval_ms=1, output_path="/dev/full")
    def work():
        sum(range(500_000))
        return "result"

    with pytest.warns(RuntimeWarning, match="could not be saved"):
        assert work() == "result"
    assert work.last_profile is not None and work.last_profile.counters  # a real profile, kept
    with pytest.warns(RuntimeWarning):
        with pytest.raises(KeyError):  # the function's own exception, not the save's
            spprof.profile(output_path="/dev/full")(lambda: {}["missing"])()


def test_decorator_that_cannot_start_runs_the_function_unprofiled(monkeypatch):
    monkeypatch.setenv("SPPROF_READER", "no_such_reader")

    @spprof.profile
    def work():
        return 7

    with pytest.warns(RuntimeWarning, match="ran unprofiled"):
        assert work() == 7
    assert work.last_profile is None and not spprof.is_active()


def test_decorator_warnings_as_errors_never_replace_the_result(capfd):
    import warnings

    @spprof.profile(output_path="/dev/full")
    def work():
        return "result"

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert work() == "result"
    assert "could not be saved" in capfd.readouterr().err


async def async_compute(n):
    import asyncio
    await asyncio.sleep(0)  # the work happens after the coroutine was created and first resumed
    return expensive_computation(n)


def frame_names(profile):
    return {f.function_name for s in profile.samples for f in s.frames}


def test_decorator_on_async_def_profiles_the_awaited_call(tmp_path):
    import asyncio
    import inspect
    path = tmp_path / "async.json"

    @spprof.profile(interval_ms=1, output_path=path)
    async def handler(n):
        """Awaits, then computes."""
        return await async_compute(n)

    assert inspect.iscoroutinefunction(handler)  # what asyncio and frameworks ask
    assert handler.__name__ == "handler" and handler.__doc__ == "Awaits, then computes."
    coroutine = handler(1_000_000)
    assert not spprof.is_active() and handler.last_profile is None  # nothing runs until awaited
    assert asyncio.run(coroutine) == expensive_computation(1_000_000)
    assert not spprof.is_active() and path.exists()
    names = frame_names(handler.last_profile)
    assert any(n.endswith("expensive_computation") for n in names), names
    assert any(n.endswith("handler") for n in names), names


def test_decorator_on_async_def_reraises_and_joins_a_running_profile():
    import asyncio

    @spprof.profile(interval_ms=1)
    async def failing():
        await asyncio.sleep(0)
        raise KeyError("x")

    with pytest.raises(KeyError):
        asyncio.run(failing())
    assert not spprof.is_active() and failing.last_profile is not None

    @spprof.profile(interval_ms=1)
    async def job(n):
        return await async_compute(n)

    async def two_at_once():  # the second call joins the first's profile, as a recursive call does
        return await asyncio.gather(job(300_000), job(300_000))

    assert asyncio.run(two_at_once()) == [expensive_computation(300_000)] * 2
    assert not spprof.is_active() and job.last_profile is not None


def test_async_with_profiler():
    import asyncio

    async def main():
        async with spprof.Profiler(interval_ms=1) as p:
            assert spprof.is_active() and p.profile is None
            await async_compute(1_000_000)
        assert not spprof.is_active()
        return p

    p = asyncio.run(main())
    assert any(n.endswith("expensive_computation") for n in frame_names(p.profile))

    async def failing():
        async with spprof.Profiler(interval_ms=1) as q:
            await asyncio.sleep(0)
            1 / 0
        return q  # not reached

    with pytest.raises(ZeroDivisionError):
        asyncio.run(failing())
    assert not spprof.is_active()
