"""The data model of api.md: frozen dataclasses, datetimes, versions, and samples built lazily."""
import dataclasses
import datetime as dt
import platform
import sys

import pytest

import spprof
from conftest import spin
from spprof.formats import FORMATS


def test_profile_fields_and_immutability():
    spprof.start(interval_ms=1)
    spin(1_500_000)
    profile = spprof.stop()
    assert isinstance(profile.start_time, dt.datetime) and profile.start_time.tzinfo is not None
    assert profile.start_time <= profile.end_time
    assert profile.python_version == platform.python_version()
    assert profile.platform.startswith("linux")
    assert profile.dropped_count == 0
    for obj, field in [(profile, "interval_ms"), (profile.samples[0], "frames"), (profile.samples[0].frames[0], "lineno")]:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, field, None)
    frame = profile.samples[0].frames[-1]
    assert {frame: 1}[spprof.Frame(frame.function_name, frame.filename, frame.lineno)] == 1
    ts = [s.timestamp_ns for s in profile.samples]
    assert ts == sorted(ts)


def test_samples_are_not_built_until_asked_for(tmp_path):
    spprof.start(interval_ms=1)
    spin(1_500_000)
    profile = spprof.stop()
    assert profile._samples is None
    repr(profile)
    for name, module in FORMATS.items():
        profile.save(tmp_path / f"p{module.EXTENSIONS[0]}", format=name)
    profile.to_collapsed()
    profile.to_speedscope()
    assert profile._samples is None  # saving and exporting work from the native tables
    assert len(profile.samples) == len(profile._data) > 0


def burn_cpu(seconds=0.1):
    import time
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_threads_are_named_as_python_names_them():
    # A thread renamed while it runs is known by its new name even when it ends before stop();
    # a `_thread` thread by its Python name when it has one ('Dummy-N'), else by its native id.
    import _thread
    import threading

    def renamer():
        threading.current_thread().name = "renamed-worker"
        burn_cpu()

    def raw(done, out, dummy):
        if dummy:
            threading.current_thread()
        out.append(threading.get_native_id())
        burn_cpu()
        done.set()

    spprof.start(interval_ms=1)
    t = threading.Thread(target=renamer, name="start-name")
    t.start()
    t.join()
    tids = []
    for dummy in (False, True):
        done = threading.Event()
        _thread.start_new_thread(raw, (done, tids, dummy))
        done.wait()
    profile = spprof.stop()
    names = {s.thread_name for s in profile.samples}
    assert "renamed-worker" in names and "start-name" not in names
    by_tid = {s.native_id: s.thread_name for s in profile.samples}
    assert by_tid[tids[1]].startswith("Dummy-")
    # 3.9 and 3.10 keep no native id in the thread state: a `_thread` thread that never touched
    # threading has none the sampler could learn (its samples, if any, carry native id 0).
    if sys.version_info >= (3, 11):
        assert by_tid[tids[0]] == f"Thread-{tids[0]}"


def test_the_frame_table_holds_only_frames_that_samples_use():
    spprof.start(interval_ms=1)
    spin(1_000_000)
    profile = spprof.stop()
    doc = profile.to_speedscope()
    used = {i for p in doc["profiles"] for stack in p["samples"] for i in stack}
    assert used == set(range(len(doc["shared"]["frames"])))
    assert "<unverified>" not in {f["name"] for f in doc["shared"]["frames"]}
