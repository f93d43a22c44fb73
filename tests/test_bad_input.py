"""Every public parameter, given a wrong type or an out-of-range value, through every entry point:
the promised error, a message naming the parameter (and its range where it has one), and nothing
started."""
import pytest

import spprof

BAD = [
    # (keyword arguments, error, words the message must contain)
    ({"interval_ms": 0}, ValueError, ["interval_ms", "1", "1000"]),
    ({"interval_ms": 1000.5}, ValueError, ["interval_ms", "1000"]),
    ({"interval_ms": float("nan")}, ValueError, ["interval_ms"]),
    ({"interval_ms": True}, TypeError, ["interval_ms"]),
    ({"interval_ms": "10"}, TypeError, ["interval_ms"]),
    ({"interval_ms": None}, TypeError, ["interval_ms"]),
    ({"output_path": 123}, TypeError, ["output_path"]),
    ({"output_path": ["p.json"]}, TypeError, ["output_path"]),
    ({"output_path": "/no/such/folder/p.json"}, FileNotFoundError, ["output_path"]),
    ({"mode": "gpu"}, ValueError, ["mode", "cpu", "wall"]),
    ({"mode": None}, ValueError, ["mode", "cpu", "wall"]),
    ({"max_depth": 0}, ValueError, ["max_depth", "1", "4096"]),
    ({"max_depth": 5000}, ValueError, ["max_depth", "4096"]),
    ({"max_depth": 2.0}, TypeError, ["max_depth"]),
    ({"max_depth": False}, TypeError, ["max_depth"]),
    ({"memory_limit_mb": 0}, ValueError, ["memory_limit_mb", "1"]),
    ({"memory_limit_mb": -1}, ValueError, ["memory_limit_mb"]),
    ({"memory_limit_mb": "100"}, TypeError, ["memory_limit_mb"]),
    ({"sample_rate": 5}, TypeError, ["sample_rate", "mode", "max_depth", "memory_limit_mb"]),
]

ENTRY_POINTS = {
    "start": lambda kw: spprof.start(**kw),
    "Profiler": lambda kw: spprof.Profiler(**kw),
    "profile": lambda kw: spprof.profile(**kw),
}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize("kwargs, error, words", BAD, ids=[repr(b[0]) for b in BAD])
def test_bad_parameter_is_refused_before_anything_starts(entry, kwargs, error, words):
    with pytest.raises(error) as info:
        ENTRY_POINTS[entry](kwargs)
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    assert not spprof.is_active()


@pytest.fixture(scope="module")
def profile():
    spprof.start(interval_ms=1)
    sum(i for i in range(300_000))
    return spprof.stop()


@pytest.mark.parametrize("path, fmt, error, words", [
    (None, None, TypeError, ["path"]),
    (12, None, TypeError, ["path"]),
    ("p.json", "svg", ValueError, ["svg", "speedscope", "collapsed", "pprof", "chrome_trace", "html"]),
    ("p.json", 3, TypeError, ["format"]),
])
def test_bad_save_arguments(profile, tmp_path, monkeypatch, path, fmt, error, words):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error) as info:
        profile.save(path, format=fmt)
    for word in words:
        assert word in str(info.value)
    assert list(tmp_path.iterdir()) == []
