"""A save that fails raises a clear OSError, leaves no partial file and loses no profile."""
import errno
import os
import stat

import pytest

import spprof
from conftest import spin
from spprof import formats as save_module


@pytest.fixture(scope="module")
def profile():
    spprof.start(interval_ms=1)
    spin(2_000_000)
    return spprof.stop()


def unwritable_folder(tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    if os.access(folder, os.W_OK):  # root ignores modes; sysfs refuses new files even to root
        return "/sys/kernel"
    return str(folder)


def leftovers(folder):
    return [p for p in os.listdir(folder) if p.startswith(".spprof-")]


@pytest.mark.parametrize("fmt", sorted(save_module.FORMATS))
def test_full_disk_raises_and_the_device_stays_a_device(profile, fmt):
    with pytest.raises(OSError) as info:
        profile.save("/dev/full", format=fmt)
    assert info.value.errno == errno.ENOSPC or "No space" in str(info.value)
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_read_only_folder_raises_permission_error_and_leaves_nothing(profile, tmp_path):
    folder = unwritable_folder(tmp_path)
    with pytest.raises(PermissionError):
        profile.save(os.path.join(folder, "p.json"))
    if folder.startswith(str(tmp_path)):
        assert os.listdir(folder) == []


def test_a_folder_as_the_path_is_refused(profile, tmp_path):
    with pytest.raises(IsADirectoryError):
        profile.save(tmp_path)
    assert tmp_path.is_dir() and leftovers(tmp_path) == []


def test_an_interrupted_save_keeps_the_old_file_whole(profile, tmp_path, monkeypatch):
    target = tmp_path / "p.collapsed"
    target.write_text("old;profile 1\n")

    def half_then_fail(prof, path):
        with open(path, "w") as f:
            f.write("half a line")
        raise KeyboardInterrupt

    monkeypatch.setattr(save_module.FORMATS["collapsed"], "write", half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        profile.save(target)
    assert target.read_text() == "old;profile 1\n"
    assert leftovers(tmp_path) == []


def test_stop_whose_save_fails_still_hands_over_the_profile(tmp_path):
    spprof.start(interval_ms=1, output_path="/dev/full")
    spin(1_000_000)
    with pytest.raises(OSError) as info:
        spprof.stop()
    assert not spprof.is_active()
    kept = info.value.profile
    assert kept.samples
    kept.save(tmp_path / "again.json")
    assert (tmp_path / "again.json").stat().st_size > 0


def test_profiler_whose_save_fails_keeps_the_profile(tmp_path):
    p = spprof.Profiler(interval_ms=1, output_path="/dev/full")
    with pytest.raises(OSError):
        with p:
            spin(500_000)
    assert p.profile is not None and not spprof.is_active()


@pytest.mark.parametrize("fmt", ["speedscope", "collapsed", "pprof", "chrome_trace", "html"])
def test_a_failed_save_carries_the_errno(profile, fmt):
    with pytest.raises(OSError) as info:
        profile.save("/dev/full", format=fmt)
    assert info.value.errno == errno.ENOSPC, info.value


def test_any_failure_after_the_native_stop_hands_over_the_profile(monkeypatch):
    from spprof import _threads

    def broken(ident, native_id):
        raise TypeError("a name that cannot be named")
    spprof.start(interval_ms=1)
    spin(500_000)
    monkeypatch.setattr(_threads, "name_of", broken)
    with pytest.raises(TypeError) as info:
        spprof.stop()
    assert not spprof.is_active()
    assert info.value.profile.samples


def test_a_save_removes_what_a_killed_save_left_and_nothing_else(profile, tmp_path):
    import signal
    import subprocess
    import sys
    from conftest import WORKLOADS
    proc = subprocess.Popen([sys.executable, str(WORKLOADS / "killed_save.py"), str(tmp_path / "p.collapsed")],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "writing\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    left = leftovers(tmp_path)
    assert len(left) == 1 and str(proc.pid) in left[0], left
    # not spprof's naming, or a live process's: kept
    others = [".spprof-abc123.tmp", f".spprof-{os.getppid()}-abcd1234.tmp", "notes.tmp"]
    for name in others:
        (tmp_path / name).write_text("x")
    profile.save(tmp_path / "again.collapsed")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(others + ["again.collapsed"])
