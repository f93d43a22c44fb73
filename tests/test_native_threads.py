"""Threads Python does not know (a C library's own workers) in cpu mode: their CPU appears under a
`<native thread NAME>` pseudo-frame, and the profile's total matches the process's CPU."""
import ctypes
import gzip
import json
import shutil
import subprocess
import sys
import threading
import time

import pytest

import spprof
from spprof._load import load
from spprof._tables import tables

from conftest import spin


def burn(seconds):
    """Python work for `seconds` of this thread's CPU."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        spin(20_000)

# A C thread that names itself, spins until its own CPU clock reaches a target, says how much
# CPU it used and then waits (alive, idle) until it is let go: no Python anywhere in it.
C_SOURCE = r"""
#include <pthread.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <atomic>

namespace {
struct Spinner {
    pthread_t thread;
    char name[16];
    long long target_ns = 0;
    std::atomic<long long> used_ns{0};
    std::atomic<int> tid{0}, done{0}, release{0};
};
Spinner spinners[64];

long long own_cpu_ns() {
    timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

void* body(void* arg) {
    Spinner* s = static_cast<Spinner*>(arg);
    pthread_setname_np(pthread_self(), s->name);
    s->tid = static_cast<int>(syscall(SYS_gettid));
    volatile unsigned long x = 0;
    while (own_cpu_ns() < s->target_ns)
        for (int i = 0; i < 20000; ++i) x += i;
    s->used_ns = own_cpu_ns();
    s->done = 1;
    while (!s->release) usleep(1000);
    return nullptr;
}
}  // namespace

extern "C" {
int spin_start(int i, const char* name, long long target_ns) {
    Spinner& s = spinners[i];
    int n = 0;
    for (; name[n] != 0 && n < 15; ++n) s.name[n] = name[n];
    s.name[n] = 0;
    s.target_ns = target_ns;
    s.used_ns = 0;
    s.done = s.release = s.tid = 0;
    return pthread_create(&s.thread, nullptr, body, &s);
}
void spin_wait(int i) { while (!spinners[i].done) usleep(1000); }
long long spin_used_ns(int i) { return spinners[i].used_ns; }
int spin_tid(int i) { return spinners[i].tid; }
void spin_end(int i) {
    spinners[i].release = 1;
    pthread_join(spinners[i].thread, nullptr);
}
}
"""

# 3.9/3.10 keep no native id in a thread state: native threads are not accounted there
accounted = pytest.mark.skipif(sys.version_info < (3, 11), reason="native threads are accounted on 3.11+")

NAME = "spin_worker"
FRAME = f"<native thread {NAME}>"


@pytest.fixture(scope="module")
def spinlib(tmp_path_factory):
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.skip("no C++ compiler")
    folder = tmp_path_factory.mktemp("spinlib")
    (folder / "spin.cpp").write_text(C_SOURCE)
    lib = folder / "libspin.so"
    subprocess.run([compiler, "-std=c++17", "-O1", "-shared", "-fPIC", "-pthread", "-o", str(lib),
                    str(folder / "spin.cpp")], check=True)
    so = ctypes.CDLL(str(lib))  # a CDLL call releases the GIL
    so.spin_start.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_longlong]
    so.spin_used_ns.restype = ctypes.c_longlong
    return so


def spin_in_c(lib, seconds, name=NAME, i=0):
    """Runs a C thread for `seconds` of its own CPU; returns (its CPU, its tid); it ends later."""
    assert lib.spin_start(i, name.encode(), int(seconds * 1e9)) == 0
    lib.spin_wait(i)
    return lib.spin_used_ns(i), lib.spin_tid(i)


def profile_c_thread(lib, seconds, **options):
    """A profile of a C thread spinning `seconds`: (profile, the thread's CPU, its tid)."""
    spprof.start(interval_ms=10, **options)
    try:
        used, tid = spin_in_c(lib, seconds)
    finally:
        profile = spprof.stop()
        lib.spin_end(0)
    return profile, used, tid


def native_weight(profile, frame=FRAME):
    return sum(s.weight_ns for s in profile.samples if s.frames and s.frames[-1].function_name == frame)


@accounted
def test_a_c_thread_appears_with_its_own_cpu_under_a_marked_frame(spinlib):
    profile, used, tid = profile_c_thread(spinlib, 1.0)
    mine = [s for s in profile.samples if s.native_id == tid]
    assert mine and all(len(s.frames) == 1 for s in mine)
    frame = mine[0].frames[0]
    assert (frame.function_name, frame.filename, frame.lineno, frame.is_native) == (FRAME, "", 0, True)
    assert {(s.thread_name, s.thread_id) for s in mine} == {(NAME, 0)}
    got = sum(s.weight_ns for s in mine)
    assert abs(got - used) <= 0.10 * used, (got, used, profile.counters)
    # spprof's own threads are counted apart, never as native threads
    assert not any(s.frames[-1].function_name.startswith("<native thread spprof") for s in profile.samples)
    assert profile.counters["native_thread_reads"] > 0


@accounted
def test_the_profile_holds_the_process_cpu(spinlib):
    """Python threads and a C thread busy together: the samples add up to the process's CPU."""
    stop = threading.Event()

    def python_worker():
        while not stop.is_set():
            spin(20_000)

    spprof.start(interval_ms=10)
    try:
        worker = threading.Thread(target=python_worker, name="py-worker")
        worker.start()
        burn(0.3)
        used, _ = spin_in_c(spinlib, 0.8)
        stop.set()
        worker.join()
    finally:
        profile = spprof.stop()
        spinlib.spin_end(0)
    total = sum(s.weight_ns for s in profile.samples)
    process = profile.process_cpu_ns
    assert process > used
    assert abs(total - process) <= 0.05 * process, (total, process, profile.counters)
    # the Python worker's CPU is its own, never a native thread's
    assert all(s.thread_name != "py-worker" for s in profile.samples if s.frames[-1].is_native)
    assert any(s.thread_name == "py-worker" for s in profile.samples)
    assert all(s.frames[-1].function_name == FRAME for s in profile.samples if s.frames[-1].is_native)


def test_off_leaves_native_threads_out(spinlib):
    profile, used, _ = profile_c_thread(spinlib, 0.3, native_threads=False)
    assert not any(f.is_native for s in profile.samples for f in s.frames)
    assert profile.counters["native_thread_reads"] == 0
    # the process's CPU is still recorded: the share shows what is missing
    assert profile.process_cpu_ns > used


@pytest.mark.skipif(sys.version_info >= (3, 11), reason="3.9/3.10 only")
def test_not_accounted_where_thread_states_hold_no_native_id(spinlib):
    profile, used, _ = profile_c_thread(spinlib, 0.3)
    assert not any(f.is_native for s in profile.samples for f in s.frames)
    assert profile.counters["native_thread_reads"] == 0
    assert profile.process_cpu_ns > used


def test_wall_mode_samples_python_threads_only(spinlib):
    profile, _, _ = profile_c_thread(spinlib, 0.3, mode="wall")
    assert profile.samples and not any(f.is_native for s in profile.samples for f in s.frames)
    assert profile.counters["native_thread_reads"] == 0


def test_bad_option_is_refused():
    with pytest.raises(TypeError, match="native_threads"):
        spprof.start(native_threads="yes")
    assert not spprof.is_active()


@accounted
def test_threads_that_come_and_go_break_nothing(spinlib):
    """Native threads that start and exit between reads: each counts or is dropped, none crashes
    the read, and a long-lived one beside them is still charged its own CPU."""
    spprof.start(interval_ms=1)
    try:
        spinlib.spin_start(0, b"steady", int(0.6e9))
        for round_ in range(20):
            for i in range(1, 9):
                assert spinlib.spin_start(i, f"short{i}".encode(), int(0.003e9)) == 0
            for i in range(1, 9):
                spinlib.spin_wait(i)
                spinlib.spin_end(i)
        spinlib.spin_wait(0)
        used = spinlib.spin_used_ns(0)
    finally:
        profile = spprof.stop()
        spinlib.spin_end(0)
    got = native_weight(profile, "<native thread steady>")
    assert abs(got - used) <= 0.10 * used, (got, used, profile.counters)
    names = {s.frames[-1].function_name for s in profile.samples if s.frames[-1].is_native}
    assert names <= {"<native thread steady>"} | {f"<native thread short{i}>" for i in range(1, 9)}


@accounted
def test_every_format_and_the_report_carry_native_threads(spinlib, tmp_path):
    profile, used, tid = profile_c_thread(spinlib, 0.4)
    label = f"{NAME} (tid {tid})"
    tab = tables(profile)
    assert label in tab.labels and tab.process_cpu_ns == profile.process_cpu_ns
    assert "process CPU" in tab.title and tab.title.startswith("spprof cpu profile")

    profile.save(tmp_path / "p.json")
    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc == profile.to_speedscope()
    assert label in [p["name"] for p in doc["profiles"]]
    assert FRAME in [f["name"] for f in doc["shared"]["frames"]]
    back = load(str(tmp_path / "p.json"))
    assert abs(back.process_cpu_ns - profile.process_cpu_ns) <= 1e6

    profile.save(tmp_path / "p.collapsed")
    assert any(line.startswith(FRAME + " ") for line in (tmp_path / "p.collapsed").read_text().splitlines())
    assert f"{NAME} ({tid});{FRAME} " in profile.to_collapsed(thread_root=True)
    profile.save(tmp_path / "p.pb.gz")
    assert FRAME.encode() in gzip.decompress((tmp_path / "p.pb.gz").read_bytes())
    profile.save(tmp_path / "p.trace.json")
    trace = (tmp_path / "p.trace.json").read_text()
    assert FRAME in trace and NAME in trace
    profile.save(tmp_path / "p.html")
    page = (tmp_path / "p.html").read_text()
    assert FRAME.replace("<", "\\u003c") in page and "process CPU" in page  # "<" escaped in the page's JSON

    report = subprocess.run([sys.executable, "-m", "spprof", "report", str(tmp_path / "p.json")],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert FRAME in report.stdout
    assert "process CPU" in report.stderr
