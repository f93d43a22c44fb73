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
    before = time.thread_time()
    busy(1.0)
    cpu_s = time.thread_time() - before
    profile = spprof.stop()
    t.join()
    return profile, cpu_s


def test_sleeping_thread_has_no_cpu_samples():
    profile, cpu_s = profile_with_sleeper("cpu")
    names = [s.thread_name for s in profile.samples]
    # the busy thread's CPU is there (less the part after the last tick, longer when a busy
    # machine held the sampler up), however little of the second a busy machine let it have
    main = sum(s.weight_ns for s in profile.samples if s.thread_name == "MainThread") / 1e9
    assert main >= 0.8 * cpu_s > 0, (main, cpu_s, names.count("MainThread"))
    assert names.count("sleeper") == 0


def test_sleeping_thread_is_sampled_at_every_tick_in_wall_mode():
    profile, _ = profile_with_sleeper("wall")
    ticks = profile.counters["ticks"]
    sleeper_samples = [s for s in profile.samples if s.thread_name == "sleeper"]
    # 200 ticks on a quiet machine; beside another suite the sampler's wakeups come late (55 once)
    assert ticks >= 20, ticks
    assert len(sleeper_samples) >= 0.9 * ticks, (len(sleeper_samples), ticks)
    # each tick is worth the time since the previous one: late ticks leave no hole
    assert all(s.weight_ns > 0 for s in sleeper_samples)
    duration = (profile.end_time - profile.start_time).total_seconds() * 1e9
    assert abs(sum(s.weight_ns for s in sleeper_samples) / duration - 1) <= 0.05
    assert all(s.frames[-1].function_name == "sleeper" for s in sleeper_samples)


def cpu_then_sleep(rounds, cpu_s, sleep_s):
    for _ in range(rounds):
        end = time.thread_time() + cpu_s
        while time.thread_time() < end:
            pass
        time.sleep(sleep_s)


def test_cpu_used_just_before_a_sleep_is_not_charged_to_the_sleep():
    # 30 ms of CPU, then 30 ms asleep, sampled every 10 ms: the CPU used between the last tick and
    # the sleep must go to the code that used it, not to the sleep the next tick finds
    spprof.start(interval_ms=10)
    cpu_then_sleep(25, 0.03, 0.03)
    profile = spprof.stop()
    total = sum(s.weight_ns for s in profile.samples)
    in_sleep = sum(s.weight_ns for s in profile.samples
                   if any(f.function_name == "cpu_then_sleep" and f is s.frames[-1] for f in s.frames)
                   and s.frames[-1].lineno == cpu_then_sleep.__code__.co_firstlineno + 5)
    assert total > 0.5e9, total
    assert in_sleep <= 0.04 * total, (in_sleep / total, len(profile.samples))
