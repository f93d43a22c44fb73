"""The output formats besides Speedscope: collapsed stacks, pprof and Chrome trace events.

pprof files are read twice: by `go tool pprof` itself (Debian's golang-go) and by the small
protobuf reader below, which checks what pprof's text output does not show."""
import datetime as dt
import gzip
import json
import os
import re
import shutil
import subprocess
import threading
import time
import types
from collections import Counter, defaultdict

import pytest

import spprof
from spprof import Frame, Profile, Sample
from spprof.formats import FORMATS, format_for

# ---------------------------------------------------------------- workloads


def hot_function(seconds):
    end = time.process_time() + seconds
    x = 0
    while time.process_time() < end:
        for i in range(2000):
            x += i
    return x


def cold_function(seconds):
    end = time.process_time() + seconds
    x = 0
    while time.process_time() < end:
        for i in range(2000):
            x -= i
    return x


def sleepy_f():
    time.sleep(0.004)


def sleepy_g():
    time.sleep(0.004)


def alternate(stop):
    while not stop.is_set():
        sleepy_f()
        sleepy_g()


def weird_function():
    """A function whose name holds the characters that separate collapsed frames and records."""
    def body(seconds):
        end = time.process_time() + seconds
        x = 0
        while time.process_time() < end:
            x += 1
        return x
    name = "semi;colon\nnew\rline"
    fields = {"co_name": name}
    if hasattr(body.__code__, "co_qualname"):
        fields["co_qualname"] = name
    f = types.FunctionType(body.__code__.replace(**fields), globals(), name)
    f.__qualname__ = name
    return f


@pytest.fixture(scope="module")
def cpu_profile():
    """cpu mode, 1 ms: 0.6 s in hot_function, 0.15 s in cold_function, on two threads."""
    spprof.start(interval_ms=1)
    t = threading.Thread(target=cold_function, args=(0.15,), name="cold thread")
    t.start()
    hot_function(0.6)
    t.join()
    return spprof.stop()


@pytest.fixture(scope="module")
def wall_profile():
    """wall mode, 1 ms: a thread switching between two sleeping functions, the main thread sleeping."""
    stop = threading.Event()
    t = threading.Thread(target=alternate, args=(stop,), name="alternating")
    spprof.start(interval_ms=1, mode="wall")
    t.start()
    time.sleep(0.3)
    stop.set()
    t.join()
    return spprof.stop()


@pytest.fixture(scope="module")
def weird_profile():
    spprof.start(interval_ms=1)
    weird_function()(0.2)
    return spprof.stop()


def hand_made_profile():
    """A Profile with Python samples only, no native tables: the exporters' fallback path."""
    a = Frame("main", "app.py", 1)
    b = Frame("work", "app.py", 10)
    c = Frame("work", "app.py", 11)
    now = dt.datetime.now(dt.timezone.utc)
    samples = [
        Sample(1_000_000, 7, "MainThread", (a, b), native_id=70),
        Sample(2_000_000, 7, "MainThread", (a, c), native_id=70),
        Sample(3_000_000, 7, "MainThread", (a,), native_id=70),
        Sample(2_000_000, 8, "other", (a, b), native_id=80),
    ]
    return Profile(now, now + dt.timedelta(milliseconds=4), 1.0, samples)


# ---------------------------------------------------------------- registry


def test_extensions_pick_the_format():
    assert format_for("a.pb.gz", None) == "pprof"
    assert format_for("a.pprof", None) == "pprof"
    assert format_for("A.TRACE.JSON", None) == "chrome_trace"
    assert format_for("a.json", None) == "speedscope"
    assert format_for("a.speedscope.json", None) == "speedscope"
    assert format_for("a.folded", None) == "collapsed"
    assert format_for("a.json", "pprof") == "pprof"
    for name, module in FORMATS.items():
        assert callable(module.write) and module.EXTENSIONS, name


def test_unknown_format_names_the_known_ones(tmp_path, cpu_profile):
    with pytest.raises(ValueError) as e:
        cpu_profile.save(tmp_path / "x", format="svg")
    for name in ("speedscope", "collapsed", "pprof", "chrome_trace"):
        assert name in str(e.value)


# ---------------------------------------------------------------- collapsed

LINE = re.compile(r"^([^\n]+) (\d+)$")


def parse_collapsed(text):
    assert text.endswith("\n")
    out = {}
    for line in text[:-1].split("\n"):
        m = LINE.match(line)
        assert m, line
        stack = tuple(m.group(1).split(";"))
        assert stack not in out, "one line per distinct stack"
        out[stack] = int(m.group(2))
    return out


def test_collapsed_default_frames_are_function_file_line(cpu_profile):
    stacks = parse_collapsed(cpu_profile.to_collapsed())
    assert sum(stacks.values()) == len(cpu_profile.samples)
    hot = f"hot_function ({__file__}:"
    assert any(stack[-1].startswith(hot) and re.fullmatch(r".*:\d+\)", stack[-1]) for stack in stacks)
    assert cpu_profile.to_collapsed() == spprof.formats.collapsed.to_text(cpu_profile, merge_lines=False, thread_root=False)


def test_collapsed_merge_lines(cpu_profile):
    by_line = parse_collapsed(cpu_profile.to_collapsed())
    merged = parse_collapsed(cpu_profile.to_collapsed(merge_lines=True))
    assert sum(merged.values()) == sum(by_line.values())
    assert len(merged) <= len(by_line)
    assert f"hot_function ({__file__})" in {stack[-1] for stack in merged}
    # the same stacks with the line numbers cut out
    expected = Counter()
    for stack, n in by_line.items():
        expected[tuple(re.sub(r":\d+\)$", ")", f) for f in stack)] += n
    assert merged == dict(expected)


def test_collapsed_thread_root(cpu_profile):
    plain = parse_collapsed(cpu_profile.to_collapsed())
    rooted = parse_collapsed(cpu_profile.to_collapsed(thread_root=True))
    assert sum(rooted.values()) == sum(plain.values())
    roots = {f"{s.thread_name} ({s.native_id})" for s in cpu_profile.samples}
    assert {stack[0] for stack in rooted} == roots
    assert any(r.startswith("MainThread (") for r in roots) and any(r.startswith("cold thread (") for r in roots)
    without_root = Counter()
    for stack, n in rooted.items():
        without_root[stack[1:]] += n
    assert dict(without_root) == plain
    both = parse_collapsed(cpu_profile.to_collapsed(merge_lines=True, thread_root=True))
    assert {stack[0] for stack in both} == roots


def test_collapsed_names_cannot_break_the_format(weird_profile, tmp_path):
    for options in ({}, {"merge_lines": True}, {"thread_root": True}):
        text = weird_profile.to_collapsed(**options)
        stacks = parse_collapsed(text)
        leaves = [stack[-1] for stack in stacks]
        assert any(leaf.startswith("semi:colon new line (") for leaf in leaves), leaves
    weird_profile.save(tmp_path / "w.collapsed")
    assert (tmp_path / "w.collapsed").read_text() == weird_profile.to_collapsed()


def test_collapsed_thread_names_cannot_break_the_format():
    now = dt.datetime.now(dt.timezone.utc)
    frame = Frame("f;g", "a\nb.py", 3)
    profile = Profile(now, now, 1.0, [Sample(1, 1, "bad;thread\nname", (frame,), native_id=5)])
    assert profile.to_collapsed(thread_root=True) == "bad:thread name (5);f:g (a b.py:3) 1\n"


def test_collapsed_from_python_samples():
    stacks = parse_collapsed(hand_made_profile().to_collapsed(merge_lines=True))
    assert stacks == {("main (app.py)", "work (app.py)"): 3, ("main (app.py)",): 1}


# ---------------------------------------------------------------- pprof


def read_varint(buf, i):
    n = shift = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return n, i


def read_message(buf):
    """{field number: [values]}: ints for varints, bytes for length-delimited fields."""
    fields = defaultdict(list)
    i = 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = read_varint(buf, i)
        elif wire == 2:
            n, i = read_varint(buf, i)
            value, i = buf[i:i + n], i + n
        else:
            raise AssertionError(f"unexpected wire type {wire}")
        fields[field].append(value)
    return fields


def read_ints(values):
    """A repeated integer field, packed or not."""
    out = []
    for v in values:
        if isinstance(v, int):
            out.append(v)
        else:
            i = 0
            while i < len(v):
                n, i = read_varint(v, i)
                out.append(n)
    return out


def one(fields, number, default=0):
    values = fields.get(number, [default])
    assert len(values) == 1
    return values[0]


def decode_pprof(path):
    with open(path, "rb") as f:
        assert f.read(2) == b"\x1f\x8b", "gzipped, as pprof wants on disk"
    p = read_message(gzip.decompress(path.read_bytes()))
    strings = [s.decode() for s in p[6]]
    assert strings[0] == ""

    def value_type(raw):
        m = read_message(raw)
        return strings[one(m, 1)], strings[one(m, 2)]

    functions = {}
    for raw in p[5]:
        m = read_message(raw)
        functions[one(m, 1)] = (strings[one(m, 2)], strings[one(m, 4)], one(m, 5))
    locations = {}
    for raw in p[4]:
        m = read_message(raw)
        lines = [read_message(line) for line in m[4]]
        assert len(lines) == 1
        locations[one(m, 1)] = (one(lines[0], 1), one(lines[0], 2))
    samples = []
    for raw in p[2]:
        m = read_message(raw)
        labels = {}
        for label in m[3]:
            lm = read_message(label)
            labels[strings[one(lm, 1)]] = strings[one(lm, 2)] if 2 in lm else one(lm, 3)
        samples.append((read_ints(m[1]), read_ints(m[2]), labels))
    return {
        "sample_type": [value_type(raw) for raw in p[1]],
        "period_type": value_type(one(p, 11)),
        "period": one(p, 12),
        "time_nanos": one(p, 9),
        "duration_nanos": one(p, 10),
        "default_sample_type": strings[one(p, 14)],
        "functions": functions,
        "locations": locations,
        "samples": samples,
        "strings": strings,
    }


def go_pprof(*args):
    go = shutil.which("go") or "/usr/bin/go"
    assert os.path.exists(go), "`go` is needed for the pprof test: apt-get install golang-go (ci/setup.sh --test-tools)"
    proc = subprocess.run([go, "tool", "pprof", *map(str, args)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_go_pprof_lists_the_hot_function_first(cpu_profile, tmp_path):
    path = tmp_path / "cpu.pb.gz"
    cpu_profile.save(path)
    out = go_pprof("-top", path)
    rows = out[out.index("flat%"):].splitlines()[1:]
    assert rows[0].split()[-1] == "hot_function", out
    assert "Type: cpu" in out
    # the same with the sample counts instead of the CPU time
    out = go_pprof("-top", "-sample_index=samples", path)
    rows = out[out.index("flat%"):].splitlines()[1:]
    assert rows[0].split()[-1] == "hot_function", out


def test_pprof_contents(cpu_profile, tmp_path):
    path = tmp_path / "cpu.pprof"
    cpu_profile.save(path)
    p = decode_pprof(path)
    assert p["sample_type"] == [("samples", "count"), ("cpu", "nanoseconds")]
    assert p["period_type"] == ("cpu", "nanoseconds")
    assert p["period"] == 1_000_000
    assert p["default_sample_type"] == "cpu"
    assert p["time_nanos"] == cpu_profile._data.start_unix_ns
    assert p["duration_nanos"] > 0
    samples = cpu_profile.samples
    assert sum(v[0] for _, v, _ in p["samples"]) == len(samples)
    assert sum(v[1] for _, v, _ in p["samples"]) == sum(s.weight_ns for s in samples)
    threads = {(s.native_id, s.thread_name) for s in samples}
    seen = set()
    for locs, values, labels in p["samples"]:
        assert len(values) == 2 and values[0] > 0
        assert set(labels) == {"thread id", "thread name"}
        seen.add((labels["thread id"], labels["thread name"]))
        assert all(loc in p["locations"] for loc in locs)
    assert seen == threads
    # one sample per (stack, thread)
    keys = [(tuple(locs), labels["thread id"]) for locs, _, labels in p["samples"]]
    assert len(keys) == len(set(keys))
    # one location per (function, line), each pointing to a known function
    assert len(set(p["locations"].values())) == len(p["locations"])
    assert all(fid in p["functions"] for fid, _ in p["locations"].values())
    assert (hot_function.__name__, __file__, hot_function.__code__.co_firstlineno) in p["functions"].values()
    # the leaf first: the samples of the main thread mostly end in hot_function
    leaf = Counter()
    for locs, values, labels in p["samples"]:
        if labels["thread name"] == "MainThread" and locs:
            leaf[p["functions"][p["locations"][locs[0]][0]][0]] += values[0]
    assert leaf.most_common(1)[0][0] == "hot_function"


def test_pprof_wall_mode(wall_profile, tmp_path):
    path = tmp_path / "wall.pb.gz"
    wall_profile.save(path)
    p = decode_pprof(path)
    assert p["sample_type"] == [("samples", "count"), ("wall", "nanoseconds")]
    assert p["period_type"] == ("wall", "nanoseconds")
    assert p["default_sample_type"] == "wall"
    assert sum(v[0] for _, v, _ in p["samples"]) == len(wall_profile.samples)
    assert "Type: wall" in go_pprof("-top", path)


def test_pprof_weird_names_and_python_samples(weird_profile, tmp_path):
    weird_profile.save(tmp_path / "w.pb.gz")
    p = decode_pprof(tmp_path / "w.pb.gz")
    assert "semi;colon\nnew\rline" in {name for name, _, _ in p["functions"].values()}
    hand_made_profile().save(tmp_path / "h.pb.gz")
    p = decode_pprof(tmp_path / "h.pb.gz")
    assert sum(v[0] for _, v, _ in p["samples"]) == 4
    assert sum(v[1] for _, v, _ in p["samples"]) == 4 * 1_000_000  # no weights: one interval each
    assert {name for name, _, _ in p["functions"].values()} == {"main", "work"}
    assert sorted(p["locations"].values()) == sorted({(fid, line) for fid, line in p["locations"].values()})
    go_pprof("-top", tmp_path / "h.pb.gz")


def test_pprof_empty_profile(tmp_path):
    spprof.start(interval_ms=1000)
    profile = spprof.stop()
    profile.save(tmp_path / "e.pb.gz")
    p = decode_pprof(tmp_path / "e.pb.gz")
    assert p["samples"] == [] and p["sample_type"][0] == ("samples", "count")


# ---------------------------------------------------------------- Chrome trace


def check_trace(path):
    """Balanced B/E with stack discipline and time order per thread; returns the events by tid."""
    doc = json.loads(path.read_text())
    assert doc["displayTimeUnit"] == "ms"
    events = doc["traceEvents"]
    pids = {e["pid"] for e in events}
    assert len(pids) == 1
    assert [e for e in events if e["ph"] == "M" and e["name"] == "process_name"]
    named = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    by_tid = defaultdict(list)
    for e in events:
        assert e["ph"] in ("B", "E", "M"), e
        if e["ph"] != "M":
            by_tid[e["tid"]].append(e)
    for tid, evs in by_tid.items():
        assert tid in named, "every thread with events has its thread_name"
        open_names = []
        last = 0
        for e in evs:
            assert isinstance(e["ts"], (int, float)) and e["ts"] >= last, "time order per thread"
            last = e["ts"]
            if e["ph"] == "B":
                open_names.append(e["name"])
            else:
                assert open_names and open_names.pop() == e["name"], "E ends the innermost open B"
        assert not open_names, "every B has its E"
    return named, by_tid


def test_chrome_trace_wall_mode(wall_profile, tmp_path):
    path = tmp_path / "wall.trace.json"
    wall_profile.save(path)
    named, by_tid = check_trace(path)
    tid = next(t for t, name in named.items() if name == "alternating")
    begins = Counter(e["name"] for e in by_tid[tid] if e["ph"] == "B")
    # 0.3 s of 4 ms calls: each function's calls show as separate slices
    assert begins["sleepy_f"] >= 5 and begins["sleepy_g"] >= 5, begins
    assert begins["alternate"] == 1, "a frame that stays on the stack stays open"
    first = next(e for e in by_tid[tid] if e["name"] == "sleepy_f")
    assert first["args"] == {"file": __file__, "first_line": sleepy_f.__code__.co_firstlineno}
    start = wall_profile._data.start_ns
    end = wall_profile._data.end_ns
    assert all(0 <= e["ts"] <= (end - start) / 1000 + wall_profile.interval_ms * 1000
               for evs in by_tid.values() for e in evs)


def test_chrome_trace_cpu_mode_and_weird_names(cpu_profile, weird_profile, tmp_path):
    cpu_profile.save(tmp_path / "cpu.trace.json")
    named, by_tid = check_trace(tmp_path / "cpu.trace.json")
    assert {s.thread_name for s in cpu_profile.samples} <= set(named.values())
    assert {s.native_id for s in cpu_profile.samples} == set(by_tid)
    weird_profile.save(tmp_path / "weird.trace.json")
    _, by_tid = check_trace(tmp_path / "weird.trace.json")
    assert "semi;colon\nnew\rline" in {e["name"] for evs in by_tid.values() for e in evs}


def test_chrome_trace_python_samples_and_empty(tmp_path):
    hand_made_profile().save(tmp_path / "h.trace.json")
    named, by_tid = check_trace(tmp_path / "h.trace.json")
    assert set(named) == {70, 80}
    assert [(e["ph"], e["name"], e["ts"]) for e in by_tid[70]] == [
        ("B", "main", 0), ("B", "work", 0), ("E", "work", 2000), ("E", "main", 3000)]
    assert by_tid[70][0]["args"] == {"file": "app.py"}  # the first line is not known here
    spprof.start(interval_ms=1000)
    profile = spprof.stop()
    profile.save(tmp_path / "e.trace.json")
    named, by_tid = check_trace(tmp_path / "e.trace.json")
    assert not by_tid


# ---------------------------------------------------------------- names that are not UTF-8


def test_non_utf8_thread_names_and_source_paths_survive_into_every_format(tmp_path):
    # What os.fsdecode makes of non-UTF-8 bytes: lone surrogates. The profile keeps the names
    # Python shows ('caf\udce9'), stop() never loses the profile over them, and every format is
    # written: JSON escapes them (\udce9, read back exactly), text formats show them as Python's
    # own stderr does (backslashreplace).
    folder = os.path.join(os.fsencode(tmp_path), b"caf\xe9")
    os.mkdir(folder)
    with open(os.path.join(folder, b"busy_module.py"), "w") as f:
        f.write("import time\ndef busy_caf(seconds):\n    end = time.process_time() + seconds\n"
                "    while time.process_time() < end:\n        pass\n")
    source = os.fsdecode(os.path.join(folder, b"busy_module.py"))
    namespace = {}
    exec(compile(open(source).read(), source, "exec"), namespace)
    thread_name = "a\udce9"
    spprof.start(interval_ms=1)
    t = threading.Thread(target=namespace["busy_caf"], args=(0.2,), name=thread_name)
    t.start()
    t.join()
    profile = spprof.stop()
    frames = {f.function_name: f for s in profile.samples for f in s.frames}
    assert frames["busy_caf"].filename == source
    assert thread_name in {s.thread_name for s in profile.samples}

    doc = profile.to_speedscope()
    assert any(f["name"] == "busy_caf" and f["file"] == source for f in doc["shared"]["frames"])
    assert any(p["name"].startswith(thread_name + " ") for p in doc["profiles"])
    shown = source.encode("utf-8", "backslashreplace").decode()
    for name in ("p.speedscope.json", "p.collapsed", "p.pb.gz", "p.trace.json", "p.html"):
        path = tmp_path / name
        profile.save(path)
        raw = path.read_bytes()
        if not name.endswith(".gz"):
            raw.decode("utf-8")  # every file stays UTF-8
        if name.endswith(".json"):
            assert json.dumps(source)[1:-1] in raw.decode()
            assert source in json.dumps(json.loads(raw), ensure_ascii=False)
        elif name.endswith(".pb.gz"):
            assert shown in decode_pprof(path)["strings"]
        elif name.endswith(".html"):
            assert "caf\\udce9" in raw.decode()
        else:
            assert shown in raw.decode()
