"""The data model of api.md: frozen dataclasses, datetimes, versions, and samples built lazily."""
import dataclasses
import datetime as dt
import platform

import pytest

import spprof
from conftest import spin
from spprof.save import FORMATS


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
