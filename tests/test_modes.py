"""cpu mode records only threads that ran; wall mode records every thread at every tick."""
import threading
import time

import spprof


def sleeper(started):
    started.set()
    time.sleep(1.6)


def busy(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def profile_with_sleeper(mode):
    started = threading.Event()
    t = threading.Thread(target=sleeper, args=(started,), name="sleeper")
    t.start()
    started.wait()
    time.sleep(0.05)  # into time.sleep
    spprof.start(interval_ms=5, mode=mode)
    busy(1.0)
    profile = spprof.stop()
    t.join()
    return profile


def test_sleeping_thread_has_no_cpu_samples():
    profile = profile_with_sleeper("cpu")
    names = [s.thread_name for s in profile.samples]
    assert names.count("MainThread") > 100
    assert names.count("sleeper") == 0


def test_sleeping_thread_is_sampled_at_every_tick_in_wall_mode():
    profile = profile_with_sleeper("wall")
    ticks = profile.counters["ticks"]
    sleeper_samples = [s for s in profile.samples if s.thread_name == "sleeper"]
    assert ticks > 100
    assert len(sleeper_samples) >= 0.9 * ticks, (len(sleeper_samples), ticks)
    assert all(s.weight_ns == 5_000_000 for s in sleeper_samples)
    assert all(s.frames[-1].function_name == "sleeper" for s in sleeper_samples)
