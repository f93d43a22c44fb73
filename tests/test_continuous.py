"""Continuous profiling (issue 15): rolling windows cut while the sampler runs, pushed to a
receiver of Grafana Pyroscope's ingest API (a real HTTP server on 127.0.0.1, tests/pyroscope_receiver.py)
or written to a folder. Every pprof body is read by our protobuf reader and by `go tool pprof -raw`."""
import array
import gzip
import inspect
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict

import pytest

import spprof
from spprof import _native
from conftest import WORKLOADS, run_workload, spin
from pyroscope_receiver import Receiver
from test_formats import decode_pprof, go_pprof


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(autouse=True)
def no_session_left():
    yield
    if spprof.continuous_stats() is not None:
        spprof.stop_continuous(0)
        pytest.fail("a test left continuous profiling running")


def decode_body(body, tmp_path, name="w.pb.gz"):
    path = tmp_path / name
    path.write_bytes(body if body[:2] == b"\x1f\x8b" else gzip.compress(body))  # Push's raw profiles are plain
    return path, decode_pprof(path)


def cpu_by_function(window):
    """{leaf function: cpu ns} of a decoded window (cpu/nanoseconds is the second value)."""
    out = defaultdict(int)
    for locs, values, _ in window["samples"]:
        fn = window["functions"][window["locations"][locs[0]][0]][0]
        out[fn] += values[1]
    return out


# ---------------------------------------------------------------- the native cut


def test_cut_hands_over_every_sample_once_and_windows_chain():
    spprof.start(interval_ms=5)
    try:
        windows = []
        t0 = time.thread_time_ns()
        for _ in range(4):
            spin(4_000_000)  # long against the interval: a tick's CPU at either end is a small part
            windows.append(_native.cut())
        spent = time.thread_time_ns() - t0
        windows.append(_native.cut(True))  # the last: the sampler stops first
        assert _native.stats()["late_at_edge"] >= 0
    finally:
        rest = spprof.stop()
    assert len(rest._data) == 0, "the last cut left nothing behind"
    total = 0
    for a, b in zip(windows, windows[1:]):
        assert b.start_ns == a.end_ns and b.start_unix_ns == a.end_unix_ns
    for w in windows:
        assert w.end_ns >= w.start_ns
        t = array.array("Q", w.sample_columns()[0])
        # every tick in the window lies in (start, end]; a late one, counted, in the next window
        assert all(w.start_ns - 50_000_000 < x <= w.end_ns for x in t)
        total += sum(array.array("Q", w.sample_columns()[1]))
        # a window names only what its samples use
        used = {s for s in array.array("I", w.sample_columns()[3])}
        assert used == set(range(len(w.stacks())))
    me = threading.get_native_id()
    mine = sum(sum(array.array("Q", w.sample_columns()[1])[i] for i, th in enumerate(array.array("I", w.sample_columns()[2]))
                   if w.threads()[th][1] == me) for w in windows)
    assert 0.9 * spent <= mine <= 1.1 * spent + 20_000_000, (mine, spent, total)


def test_ignored_threads_are_never_sampled():
    """The session's exporter and sender are left out by the sampler itself (their clocks are not
    read at every tick), not only trimmed from each window."""
    go = threading.Event()
    tids = {}

    def worker(name):
        tids[name] = threading.get_native_id()
        go.wait()
        spin(40_000_000)  # over a second each: far above both bounds below

    spprof.start(interval_ms=2)
    try:
        threads = [threading.Thread(target=worker, args=(n,)) for n in ("ignored", "kept")]
        for t in threads:
            t.start()
        assert _native.ignore_thread(threads[0].ident)
        go.set()
        for t in threads:
            t.join()
    finally:
        data = spprof.stop()._data
    assert not _native.ignore_thread(threads[1].ident), "nothing to ignore without a profiler"
    weight = defaultdict(int)
    columns = data.sample_columns()
    for w, th in zip(array.array("Q", columns[1]), array.array("I", columns[2])):
        weight[data.threads()[th][1]] += w
    assert weight[tids["kept"]] > 100_000_000
    assert weight[tids["ignored"]] < 5_000_000  # at most its start, seen before it was ignored


def test_cut_without_a_profile_raises():
    with pytest.raises(RuntimeError):
        _native.cut()


# ---------------------------------------------------------------- options refused before start


@pytest.mark.parametrize("kwargs, error", [
    ({"tags": {"bad-name": "x"}}, ValueError),
    ({"tags": {"1x": "x"}}, ValueError),
    ({"tags": {"__name__": "x"}}, ValueError),
    ({"tags": {"service_name": "x"}}, ValueError),
    ({"tags": {"env": "a,b"}}, ValueError),
    ({"tags": {"env": "a}"}}, ValueError),
    ({"tags": {"env": ""}}, ValueError),
    ({"tags": {"env": "with space"}}, ValueError),
    ({"tags": {"env": 3}}, TypeError),
    ({"tags": {f"t{i}": "x" for i in range(26)}}, ValueError),
    ({"push_url": "ftp://host/"}, ValueError),
    ({"push_url": "http://"}, ValueError),
    ({"push_url": "http://host:99999"}, ValueError),
    ({"push_url": "http://host/?a=b"}, ValueError),
    ({"push_url": "pyroscope:4040"}, ValueError),
    ({"push_url": None}, ValueError),  # neither sink
    ({"window_s": 0.5}, ValueError),
    ({"window_s": 7200}, ValueError),
    ({"interval_ms": 0}, ValueError),
    ({"mode": "gpu"}, ValueError),
    ({"token": "a b"}, ValueError),
    ({"headers": {"X-Bad\n": "v"}}, ValueError),
    ({"basic_auth": ("u", "p"), "token": "t"}, ValueError),
    ({"output_dir": "/nonexistent/folder"}, FileNotFoundError),
])
def test_bad_options_refused_before_anything_starts(kwargs, error):
    args = {"push_url": "http://127.0.0.1:9/", **kwargs}
    if "output_dir" in kwargs:
        args.pop("push_url")
    with pytest.raises(error):
        spprof.start_continuous("app", **args)
    assert not spprof.is_active() and spprof.continuous_stats() is None
    assert not [t for t in threading.enumerate() if t.name.startswith("spprof-")]


@pytest.mark.parametrize("name", ["", "a b", "app{x}", ".hidden", "a,b"])
def test_bad_app_names_refused(name):
    with pytest.raises(ValueError):
        spprof.start_continuous(name, push_url="http://127.0.0.1:9/")
    assert not spprof.is_active()


# ---------------------------------------------------------------- windows pushed


def test_windows_are_contiguous_complete_and_labelled(receiver, tmp_path):
    """70/30 in one thread, 1 s windows: the windows' summed CPU is the thread's own within a few
    %, the split holds in the sum and in every full window, and the windows chain without a gap."""
    kwargs = {"app_name": "split.app", "push_url": receiver.url, "window_s": 1, "interval_ms": 10,
              "tags": {"env": "test", "region": "eu-1"}}
    proc, out = run_workload("continuous_split", 6, json.dumps(kwargs))
    assert proc.returncode == 0, proc.stderr
    reqs = receiver.ok()
    assert len(reqs) >= 5 and out["stats"]["windows_sent"] == len(reqs), (len(reqs), out)
    assert out["stats"]["windows_dropped"] == 0
    windows = []
    for i, r in enumerate(reqs):
        q = r["query"]
        assert r["path"] == "/ingest" and q["format"] == "pprof" and q["spyName"] == "spprof"
        assert q["sampleRate"] == "100"
        assert r["app"] == "split.app.cpu"
        assert r["labels"]["env"] == "test" and r["labels"]["region"] == "eu-1"
        assert r["labels"]["pid"].isdigit() and r["labels"]["hostname"]
        assert r["content_type"] == "application/octet-stream"
        assert r["body"][:2] == b"\x1f\x8b"
        w = decode_body(r["body"], tmp_path, f"w{i}.pb.gz")[1]
        assert w["sample_type"] == [("samples", "count"), ("cpu", "nanoseconds")]
        assert w["period_type"] == ("cpu", "nanoseconds") and w["period"] == 10_000_000
        assert all(set(labels) == {"thread_name"} for _, _, labels in w["samples"])
        assert {labels["thread_name"] for _, _, labels in w["samples"]} <= {"worker", "MainThread"}
        assert int(q["from"]) <= w["time_nanos"] // 10**9 < int(q["until"]) + 1
        windows.append(w)
    windows.sort(key=lambda w: w["time_nanos"])
    for a, b in zip(windows, windows[1:]):
        assert b["time_nanos"] == a["time_nanos"] + a["duration_nanos"], "a gap or an overlap between windows"
    total = defaultdict(int)
    for w in windows:
        for fn, ns in cpu_by_function(w).items():
            total[fn] += ns
    summed = sum(total.values())
    assert abs(summed - out["thread_cpu_ns"]) <= 0.05 * out["thread_cpu_ns"], (summed, out["thread_cpu_ns"])
    share = total["hot_seventy"] / (total["hot_seventy"] + total["cold_thirty"])
    assert 0.65 <= share <= 0.75, share
    for w in windows[1:-1]:  # the full windows
        by = cpu_by_function(w)
        if by["hot_seventy"] + by["cold_thirty"] > 500_000_000:
            assert 0.55 <= by["hot_seventy"] / (by["hot_seventy"] + by["cold_thirty"]) <= 0.85
    raw = go_pprof("-raw", tmp_path / "w1.pb.gz")
    assert "hot_seventy" in raw and "thread_name" in raw and "cpu/nanoseconds" in raw


def test_wall_mode_windows_and_auth_headers(receiver, tmp_path):
    spprof.start_continuous("wall-app", push_url=receiver.url + "/", window_s=1, mode="wall",
                            basic_auth=("123456", "s3cret"), headers={"X-Scope-OrgID": "tenant-1"},
                            default_tags=False, tags={"env": "x"})
    time.sleep(1.5)
    stats = spprof.stop_continuous()
    reqs = receiver.ok()
    assert reqs and stats["windows_sent"] == len(reqs)
    r = reqs[0]
    assert r["app"] == "wall-app.wall" and r["labels"] == {"env": "x"}
    assert r["headers"]["authorization"] == "Basic MTIzNDU2OnMzY3JldA=="
    assert r["headers"]["x-scope-orgid"] == "tenant-1"
    w = decode_body(r["body"], tmp_path)[1]
    assert w["sample_type"] == [("samples", "count"), ("wall", "nanoseconds")]
    assert w["period_type"] == ("wall", "nanoseconds")


def test_stats_merge_into_profiler_stats(receiver):
    spprof.start_continuous("app", push_url=receiver.url, window_s=1, token="tok")
    try:
        spin(200_000)
        time.sleep(1.3)
        st = spprof.stats()
        assert st is not None and st.windows_made >= 1
    finally:
        spprof.stop_continuous()
    assert receiver.requests[0]["headers"]["authorization"] == "Bearer tok"
    with pytest.raises(RuntimeError):
        spprof.stop_continuous()


# ---------------------------------------------------------------- failing receivers


def _busy(seconds):
    n = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        spin(20_000)
        n += 1
    return n


def _session_against(answer, busy_s, **kwargs):
    """A session of 1 s windows pushing to a receiver that answers `answer(request)`, on for
    `busy_s` of work; (final stats, the receiver, when stop began, how long stop took)."""
    r = Receiver(answer)
    try:
        spprof.start_continuous("app", push_url=r.url, window_s=1, **kwargs)
        _busy(busy_s)
        t0 = time.monotonic()
        stats = spprof.stop_continuous()
        return stats, r, t0, time.monotonic() - t0
    finally:
        r.close()


@pytest.mark.parametrize("status, retried, rejected", [(500, True, False), (400, False, True), (429, True, False)])
def test_failing_receiver_retries_or_drops_and_logs_once(status, retried, rejected, caplog):
    headers = {"Retry-After": "30"} if status == 429 else {}
    stats, r, t0, stop_s = _session_against(lambda req: (status, headers, 0.0), 3.5, flush_timeout_s=1)
    assert stop_s < 1 + 2.0
    assert stats["windows_made"] >= 3 and stats["windows_sent"] == 0
    assert (stats["windows_retried"] > 0) == retried, stats
    assert (stats["windows_rejected"] > 0) == rejected, stats
    assert str(status) in stats["last_error"]
    assert len([rec for rec in caplog.records if rec.name == "spprof"]) == 1, "one warning a failure streak"
    if status == 429:  # Retry-After (30 s here) is honoured: one request until the exit's flush
        assert len([q for q in r.requests if q["time"] < t0]) == 1


def test_dead_receiver_never_holds_up_the_app_nor_its_exit():
    r = Receiver()
    url = r.url
    r.close()  # nothing listens there now
    spprof.start_continuous("app", push_url=url, window_s=1, flush_timeout_s=1, memory_limit_mb=4)
    try:
        sender = next(t for t in threading.enumerate() if t.name == "spprof-send")
        sender_clock = time.pthread_getcpuclockid(sender.ident)
        app0, sender0 = time.thread_time(), time.clock_gettime(sender_clock)
        _busy(1.5)
        time.sleep(1.0)
        app, sent_cpu = time.thread_time() - app0, time.clock_gettime(sender_clock) - sender0
        st = spprof.continuous_stats()
        assert st["bytes_queued"] <= 1024 * 1024
    finally:
        t0 = time.monotonic()
        stats = spprof.stop_continuous()
        assert time.monotonic() - t0 < 1 + 2.0
    # Failures are retried on a backoff (no window reaches its last attempt this soon), not in a
    # loop that would take the app's CPU and GIL: the sender's CPU is a sliver of the app's.
    assert st["windows_retried"] >= 1 and st["windows_dropped"] == 0, st
    assert sent_cpu < 0.05 * app, (sent_cpu, app)
    assert stats["windows_sent"] == 0 and stats["windows_retried"] >= 1
    assert "cannot reach" in stats["last_error"]


def test_slow_receiver_exit_within_the_flush_deadline():
    stats, _, _, stop_s = _session_against(lambda req: (200, {}, 30.0), 2.5, flush_timeout_s=1.5, timeout_s=30)
    assert stop_s < 1.5 + 2.0
    assert stats["windows_dropped"] >= 1


def test_queue_bound_drops_the_oldest():
    # a tiny bound: every window waits behind the first one's retries, the oldest go
    stats = _session_against(lambda req: (503, {}, 0.0), 4.5, flush_timeout_s=0.5, queue_mb=0.001)[0]
    assert stats["windows_dropped"] >= 2 and stats["windows_sent"] == 0


# ---------------------------------------------------------------- the folder sink


def test_folder_sink_keeps_its_bounds(tmp_path):
    spprof.start_continuous("app", output_dir=tmp_path, window_s=1, max_files=2)
    _busy(4.5)
    stats = spprof.stop_continuous()
    files = sorted(os.listdir(tmp_path))
    assert stats["windows_sent"] >= 4 and len(files) == 2, files
    for name in files:
        assert name.startswith("app-") and name.endswith(".pb.gz")
        first, last = name[len("app-"):-len(".pb.gz")].split("-")
        w = decode_pprof(tmp_path / name)
        assert w["time_nanos"] // 1_000_000 == int(first)
        assert int(first) <= int(last)


def test_folder_sink_never_leaves_a_partial_file(tmp_path):
    """kill -9 while windows are written (10 ms windows of a busy many-threaded program would be
    best; 1 s windows and a kill at a random point is what the bounds allow): every *.pb.gz
    present is whole, and the next session removes the dead process's temporary files."""
    code = ("import spprof, sys, time\n"
            f"spprof.start_continuous('app', output_dir={str(tmp_path)!r}, window_s=1)\n"
            "print('started', flush=True)\n"
            "x = 0\n"
            "while True:\n    x += 1\n")
    for delay in (1.05, 1.5, 2.02):
        # cwd: `-c` puts it first in sys.path, and the checkout's spprof/ must not shadow the installed one
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, cwd=tmp_path)
        assert proc.stdout.readline().strip() == b"started"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # a temporary file as a kill during the write leaves it
    (tmp_path / f".app-1-2.pb.gz.{proc.pid}.tmp").write_bytes(b"\x1f\x8b partial")
    for name in os.listdir(tmp_path):
        if name.endswith(".pb.gz") and not name.startswith("."):
            gzip.decompress((tmp_path / name).read_bytes())
            decode_pprof(tmp_path / name)
    spprof.start_continuous("app", output_dir=tmp_path, window_s=1)
    spprof.stop_continuous()
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


# ---------------------------------------------------------------- fork, environment, spprof run


def test_prefork_workers_push_with_their_own_pid(receiver):
    proc, out = run_workload("continuous_prefork", receiver.url, 3)
    assert proc.returncode == 0, proc.stderr
    pids = defaultdict(int)
    for r in receiver.ok():
        pids[r["labels"]["pid"]] += 1
    assert str(out["master"]) in pids, pids
    for worker in out["workers"]:
        assert pids.get(str(worker), 0) >= 1, (worker, dict(pids))
    assert len(pids) == 4
    # each worker's last window was flushed at its exit
    assert all(status == 0 for status in out["statuses"])


def need_environment_hook():
    import site
    if not any(os.path.exists(os.path.join(d, "spprof-auto.pth")) for d in site.getsitepackages()):
        pytest.skip("spprof-auto.pth is not installed here (an editable install has no hook)")


def _python_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPPROF_")}
    env.update(extra)
    return env


def test_environment_alone_turns_it_on(receiver, tmp_path):
    """No code change: the installed spprof-auto.pth starts a session from SPPROF_* variables."""
    need_environment_hook()
    script = tmp_path / "plain_app.py"
    script.write_text("import time, sys\nx = 0\nend = time.monotonic() + 2.5\n"
                      "while time.monotonic() < end:\n    x += 1\n"
                      "import spprof\nprint(spprof.continuous_stats() is not None)\n")
    env = _python_env(SPPROF_PUSH_URL=receiver.url, SPPROF_APP_NAME="envapp", SPPROF_TAGS="env=k8s,team=core",
                      SPPROF_WINDOW_S="1")
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "True", proc.stderr
    reqs = receiver.ok()
    assert len(reqs) >= 2
    assert {r["app"] for r in reqs} == {"envapp.cpu"}
    assert reqs[0]["labels"]["env"] == "k8s" and reqs[0]["labels"]["team"] == "core"
    assert reqs[0]["labels"]["pid"].isdigit()
    # a bad setting never stops the program: it runs unprofiled and says why
    env["SPPROF_TAGS"] = "bad-name=x"
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "False"
    assert "bad-name" in proc.stderr
    # and without the variables nothing of spprof is even imported
    proc = subprocess.run([sys.executable, "-c", "import sys; print('spprof' in sys.modules)"],
                          env=_python_env(), cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "False"


def test_environment_sigterm_flushes_the_last_window(tmp_path):
    need_environment_hook()
    code = "import time\nprint('up', flush=True)\nx = 0\nwhile True:\n    x += 1\n"
    env = _python_env(SPPROF_OUTPUT_DIR=str(tmp_path), SPPROF_APP_NAME="termapp", SPPROF_WINDOW_S="60")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, cwd=tmp_path)
    assert proc.stdout.readline().strip() == b"up"
    time.sleep(0.5)
    proc.terminate()
    assert proc.wait(timeout=30) == -signal.SIGTERM
    files = [n for n in os.listdir(tmp_path) if n.startswith("termapp-")]
    assert len(files) == 1, "the window cut at SIGTERM"


def test_spprof_run_push(receiver, tmp_path):
    script = tmp_path / "runapp.py"
    script.write_text("import time\nx = 0\nend = time.monotonic() + 2.5\nwhile time.monotonic() < end:\n    x += 1\n")
    spprof_cli = os.path.join(os.path.dirname(sys.executable), "spprof")
    proc = subprocess.run([spprof_cli, "run", "--push", receiver.url, "--app-name", "runapp", "--tag", "env=prod",
                           "--window", "1", str(script)], env=_python_env(), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    reqs = receiver.ok()
    assert len(reqs) >= 2 and {r["app"] for r in reqs} == {"runapp.cpu"}
    assert reqs[0]["labels"]["env"] == "prod"
    for r in reqs:  # spprof's own frames (the launcher, runpy) are trimmed, as in a one-shot run
        w = decode_body(r["body"], tmp_path)[1]
        assert not any("/spprof/" in f[1] or "runpy" in f[1] for f in w["functions"].values()), w["functions"]
    # the environment too, and a bad option is an error before the program runs
    proc = subprocess.run([spprof_cli, "run", "--push", "ftp://x", str(script)], env=_python_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "http" in proc.stderr
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.run([spprof_cli, "run", "--window", "1", str(script)],
                          env=_python_env(SPPROF_OUTPUT_DIR=str(out)), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert [n for n in os.listdir(out) if n.startswith("runapp-")]


def test_the_receiver_speaks_the_agents_protocol(receiver, tmp_path):
    """pyroscope-io (Grafana's agent, from PyPI) pointed at the same receiver: its requests parse
    with the same code, to the same series labels and the same kind of pprof body as ours."""
    pyroscope = pytest.importorskip("pyroscope", reason="pyroscope-io is not installed (pip install pyroscope-io)")
    # pyroscope-io before 1.4 (the newest for 3.9) has no upload_interval: it sends every 10 s
    short = "upload_interval" in inspect.signature(pyroscope.configure).parameters
    code = ("import pyroscope, time\n"
            f"pyroscope.configure(application_name='peer.app', server_address={receiver.url!r}, "
            f"tags={{'env': 'x'}}{', upload_interval=1' if short else ''})\n"
            f"x = 0\nend = time.monotonic() + {2.5 if short else 12.5}\nwhile time.monotonic() < end:\n    x += 1\n"
            "pyroscope.shutdown()\n")
    proc = subprocess.run([sys.executable, "-c", code], env=_python_env(), capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    reqs = receiver.ok()
    assert reqs, [r["path"] for r in receiver.requests]
    for i, r in enumerate(reqs):
        assert r["app"] == "peer.app.cpu" and r["labels"]["env"] == "x"
        w = decode_body(r["body"], tmp_path, f"peer{i}.pb.gz")[1]
        assert ("cpu", "nanoseconds") in w["sample_type"] or ("samples", "count") in w["sample_type"]


def test_tls_failure_is_retried_and_never_fatal(receiver):
    # https to a server that speaks plain http: the handshake fails, as with a wrong certificate
    spprof.start_continuous("app", push_url=receiver.url.replace("http:", "https:"), window_s=1, flush_timeout_s=1)
    _busy(2.5)
    t0 = time.monotonic()
    stats = spprof.stop_continuous()
    assert time.monotonic() - t0 < 1 + 2.0
    assert stats["windows_sent"] == 0 and stats["windows_retried"] >= 1, stats
    assert "cannot reach" in stats["last_error"]


def test_tables_start_afresh_under_code_churn(tmp_path):
    """Thousands of short-lived functions and a 1 MB bound: the interning tables kept between
    windows start afresh instead of filling the bound for good, and windows go on naming code."""
    proc, out = run_workload("continuous_churn", tmp_path, 5)
    assert proc.returncode == 0, proc.stderr
    assert out["afresh"] >= 1, out
    assert out["bytes_held"] <= 1.1 * 1024 * 1024  # the engine's bound (1 MB at least), with its accounting's slack
    files = sorted(os.listdir(tmp_path), key=lambda n: int(n.split("-")[1]))
    assert len(files) == out["stats"]["windows_sent"] >= 4
    for name in files[1:-1]:  # each full window names the functions it saw, before and after the restart
        names = {f[0] for f in decode_pprof(tmp_path / name)["functions"].values()}
        assert sum(n.startswith("churn_") for n in names) >= 10, (name, len(names))


def test_gunicorn_workers_push_with_their_own_pid(receiver):
    """gunicorn (from PyPI) with 3 sync workers, profiling turned on by the environment alone in
    the master: each worker profiles and pushes on its own, and flushes when gunicorn stops it."""
    pytest.importorskip("gunicorn", reason="gunicorn is not installed (pip install gunicorn)")
    need_environment_hook()  # gunicorn's master turns profiling on from the environment alone
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    env = _python_env(SPPROF_PUSH_URL=receiver.url, SPPROF_APP_NAME="gunicorn-app", SPPROF_WINDOW_S="1",
                      SPPROF_MODE="wall")  # idle workers show in wall mode only
    proc = subprocess.Popen([gunicorn, "-w", "3", "-b", "127.0.0.1:0", "--chdir", str(WORKLOADS), "gunicorn_app:app"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len({r["labels"]["pid"] for r in receiver.ok()}) < 4:
            time.sleep(0.5)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    pids = {r["labels"]["pid"] for r in receiver.ok()}
    assert str(proc.pid) in pids and len(pids) >= 4, (pids, err[-2000:])
    assert {r["app"] for r in receiver.ok()} == {"gunicorn-app.wall"}


def test_spprof_run_trims_its_own_stop_and_nothing_of_the_program():
    from spprof.continuous import _stops_or_launches
    threading_py = os.path.join(os.path.dirname(os.__file__), "threading.py")
    assert _stops_or_launches("Session.stop", os.path.join(os.path.dirname(spprof.__file__), "continuous.py"))
    assert _stops_or_launches("Thread.join", threading_py)
    assert _stops_or_launches("Thread._wait_for_tstate_lock", threading_py)
    # a thread's own stack starts in threading's bootstrap: it stays
    assert not _stops_or_launches("Thread._bootstrap", threading_py)
    assert not _stops_or_launches("join", "/srv/app/workers.py")
