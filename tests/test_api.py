"""start/stop/is_active/stats and their errors, as api.md promises."""
import os
import threading

import pytest

import spprof
from conftest import spin


def test_start_stop_roundtrip():
    assert not spprof.is_active()
    assert spprof.stats() is None
    spprof.start(interval_ms=2)
    assert spprof.is_active()
    spin(2_000_000)
    stats = spprof.stats()
    assert stats.collected_samples > 0
    assert stats.duration_ms > 0
    assert 0 <= stats.overhead_estimate_pct < 100
    assert stats.reader in ("process_vm_readv", "/proc/self/mem", "pipe")
    profile = spprof.stop()
    assert not spprof.is_active()
    assert profile.samples
    assert profile.end_time >= profile.start_time
    assert profile.interval_ms == 2
    assert all(a.timestamp_ns <= b.timestamp_ns for a, b in zip(profile.samples, profile.samples[1:]))
    frame = profile.samples[0].frames[-1]
    assert isinstance(frame, spprof.Frame) and frame.lineno > 0


def test_errors_of_start_and_stop():
    with pytest.raises(RuntimeError, match="^Profiler not running$"):
        spprof.stop()
    spprof.start()
    try:
        with pytest.raises(RuntimeError, match="^Profiler already running$"):
            spprof.start()
    finally:
        spprof.stop()


@pytest.mark.parametrize("bad, error", [
    (0, ValueError), (0.5, ValueError), (1001, ValueError), (-5, ValueError),
    (True, TypeError), ("10", TypeError), (None, TypeError),
])
def test_bad_interval_is_refused_before_anything_starts(bad, error):
    with pytest.raises(error, match="interval_ms"):
        spprof.start(interval_ms=bad)
    assert not spprof.is_active()


@pytest.mark.parametrize("options, error, word", [
    ({"mode": "gpu"}, ValueError, "mode"),
    ({"max_depth": 0}, ValueError, "max_depth"),
    ({"max_depth": 1.5}, TypeError, "max_depth"),
    ({"memory_limit_mb": 0}, ValueError, "memory_limit_mb"),
    ({"colour": "red"}, TypeError, "colour"),
])
def test_bad_options_are_refused(options, error, word):
    with pytest.raises(error, match=word):
        spprof.start(**options)
    assert not spprof.is_active()


def test_unwritable_output_path_is_refused_before_sampling(tmp_path):
    with pytest.raises(FileNotFoundError):
        spprof.start(output_path=tmp_path / "missing" / "p.json")
    with pytest.raises(IsADirectoryError):
        spprof.start(output_path=tmp_path)
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    read_only.chmod(0o500)
    # root ignores modes: sysfs refuses new files even to root
    folder = "/sys/kernel" if os.access(read_only, os.W_OK) else str(read_only)
    with pytest.raises(PermissionError, match="not writable"):
        spprof.start(output_path=os.path.join(folder, "p.json"))
    assert not spprof.is_active()
    assert os.listdir(tmp_path) == ["read-only"]


def test_output_path_extension_picks_the_format(tmp_path):
    path = tmp_path / "p.collapsed"
    spprof.start(interval_ms=1, output_path=path)
    spin(1_000_000)
    spprof.stop()
    lines = path.read_text().splitlines()
    assert lines and all(line.rsplit(" ", 1)[1].isdigit() for line in lines)


def test_output_path_written_at_stop(tmp_path):
    path = tmp_path / "p.json"
    spprof.start(interval_ms=1, output_path=path)
    spin(1_000_000)
    profile = spprof.stop()
    assert path.exists() and profile.samples
    assert [p for p in os.listdir(tmp_path) if p != "p.json"] == []


def test_start_and_stop_from_other_threads():
    errors = []
    t = threading.Thread(target=lambda: spprof.start(interval_ms=1))
    t.start()
    t.join()
    assert spprof.is_active()
    spin(500_000)
    box = []
    t = threading.Thread(target=lambda: box.append(spprof.stop()))
    t.start()
    t.join()
    assert not spprof.is_active() and not errors
    assert box[0].samples


def test_racing_starts_exactly_one_wins():
    barrier = threading.Barrier(8)
    outcomes = []

    def racer():
        barrier.wait()
        try:
            spprof.start(interval_ms=5)
            outcomes.append("started")
        except RuntimeError as e:
            outcomes.append(str(e))

    threads = [threading.Thread(target=racer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spprof.stop()
    assert outcomes.count("started") == 1
    assert outcomes.count("Profiler already running") == 7


def test_the_installed_engine_has_no_benchmark_entry_points():
    # they are built apart, as spprof._bench, only with SPPROF_BENCH=1 (bench/native/)
    from spprof import _native
    for name in ("EngineBench", "measure_timer_wakeups", "measure_sleep_wakeups"):
        assert not hasattr(_native, name), name
