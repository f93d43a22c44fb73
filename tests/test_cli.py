"""The `spprof` command as a person types it: `python -m spprof ...` with the venv's python and
the `spprof` console script beside it, in subprocesses, checking files, exit codes and output."""
import json
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from spprof._load import load

REPO = Path(__file__).resolve().parent.parent
WORKLOADS = Path(__file__).parent / "workloads"
PROGRAM = WORKLOADS / "cli_program.py"
CONSOLE_SCRIPT = Path(sys.executable).parent / "spprof"
ARTIFACTS = REPO / "out" / "test-artifacts"
HOT = "spprof_cli_hot"
LAUNCHERS = {"python -m spprof": [sys.executable, "-m", "spprof"], "spprof": [str(CONSOLE_SCRIPT)]}


@pytest.fixture(params=sorted(LAUNCHERS))
def launcher(request):
    if request.param == "spprof":
        assert CONSOLE_SCRIPT.is_file() and os.access(CONSOLE_SCRIPT, os.X_OK), \
            f"no console script at {CONSOLE_SCRIPT}: reinstall spprof (pip install -e .)"
    return LAUNCHERS[request.param]


def spprof_cmd(*args, cwd, launcher=LAUNCHERS["python -m spprof"], timeout=180):
    return subprocess.run([*launcher, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def python_cmd(*args, cwd, timeout=180):
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def seen(proc):
    """What the program printed about itself: its first stdout line."""
    return json.loads(proc.stdout.splitlines()[0])


def without_spprof_lines(stderr):
    return "".join(line for line in stderr.splitlines(True) if not line.startswith("spprof: "))


def top_function(path):
    data = load(str(path))
    frames = data.located_frames()
    weights = {}
    for stacks in data.by_thread():
        for stack, (_, w) in stacks.items():
            if stack:
                name = frames[stack[-1]][0]
                weights[name] = weights.get(name, 0) + w
    return max(weights, key=weights.get)


# ---- the program sees what plain python gives it


@pytest.mark.parametrize("how", ["relative", "absolute"])
def test_script_sees_argv_name_path_and_exit_code_as_under_python(launcher, tmp_path, how):
    cwd = WORKLOADS if how == "relative" else tmp_path
    script = "cli_program.py" if how == "relative" else str(PROGRAM)
    args = [script, "a b", "--flag", "-i", "5", "--burn", "0.3", "--exit", "3"]
    plain = python_cmd(*args, cwd=cwd)
    out = tmp_path / "p.json"
    profiled = spprof_cmd("run", "-o", out, *args, cwd=cwd, launcher=launcher)
    assert plain.returncode == profiled.returncode == 3, profiled.stderr
    assert seen(profiled) == seen(plain)
    assert seen(profiled)["name"] == "__main__" and seen(profiled)["main_is_me"]
    assert seen(profiled)["argv"] == args
    assert top_function(out) == HOT


def test_module_sees_argv_name_path_and_exit_code_as_under_python_m(launcher, tmp_path):
    args = ["a", "--x", "--exit", "4"]
    plain = python_cmd("-m", "cli_program", *args, cwd=WORKLOADS)
    out = tmp_path / "m.json"
    profiled = spprof_cmd("run", "-o", out, "-m", "cli_program", *args, cwd=WORKLOADS, launcher=launcher)
    assert plain.returncode == profiled.returncode == 4, profiled.stderr
    assert seen(profiled) == seen(plain)
    assert seen(profiled)["path0"] == str(WORKLOADS)
    assert out.exists()


def test_a_package_runs_as_its_main_as_under_python_m(tmp_path):
    plain = python_cmd("-m", "cli_pkg", "x", cwd=WORKLOADS)
    profiled = spprof_cmd("run", "-o", tmp_path / "k.json", "-m", "cli_pkg", "x", cwd=WORKLOADS)
    assert plain.returncode == profiled.returncode == 6, profiled.stderr
    assert seen(profiled) == seen(plain) and seen(plain)["package"] == "cli_pkg"


def test_an_uncaught_exception_prints_pythons_traceback_exits_1_and_saves(launcher, tmp_path):
    plain = python_cmd(PROGRAM, "--burn", "0.2", "--raise", cwd=tmp_path)
    out = tmp_path / "r.json"
    profiled = spprof_cmd("run", "-o", out, PROGRAM, "--burn", "0.2", "--raise", cwd=tmp_path, launcher=launcher)
    assert plain.returncode == profiled.returncode == 1
    # The same traceback, without spprof's or runpy's frames in it
    assert without_spprof_lines(profiled.stderr) == plain.stderr
    assert "ValueError: boom from the workload" in profiled.stderr
    assert out.exists() and f"written to {out}" in profiled.stderr


def default_signals():
    # A shell starts a background job with SIGINT ignored, and the program would inherit that
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_DFL)


def run_until_ready(cmd, cwd):
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_signals)
    assert proc.stdout.readline().startswith("{")
    assert proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.parametrize("signum,extra", [(signal.SIGINT, []), (signal.SIGTERM, []),
                                          (signal.SIGTERM, ["--own-sigterm"])],
                         ids=["SIGINT", "SIGTERM", "SIGTERM-own-handler"])
def test_a_signal_ends_the_program_as_under_python_and_the_profile_is_saved(launcher, tmp_path, signum, extra):
    results = []
    out = tmp_path / "s.json"
    for cmd in ([sys.executable], [*launcher, "run", "-o", str(out)]):
        proc = run_until_ready([*cmd, str(PROGRAM), "--burn", "0.3", "--forever", *extra], tmp_path)
        try:
            proc.send_signal(signum)
            stdout, stderr = proc.communicate(timeout=120)
        finally:  # a program that did not end must not outlive the test, burning a CPU
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        # Where Ctrl-C lands in the loop varies: compare the traceback's last line only.
        last = (without_spprof_lines(stderr).strip().splitlines() or [""])[-1]
        results.append((proc.returncode, stdout, last))
    assert results[0] == results[1]
    expected = 7 if extra else -signum  # the program's own handler exits 7; else death by the signal
    assert results[1][0] == expected
    assert results[1][2] == ("KeyboardInterrupt" if signum == signal.SIGINT else "")
    assert top_function(out) == HOT


def test_duration_saves_while_the_program_goes_on(launcher, tmp_path):
    out = tmp_path / "d.json"
    proc = spprof_cmd("run", "--duration", "0.3", "-o", out, PROGRAM, "--wait-for", out, "--exit", "5",
                      cwd=tmp_path, launcher=launcher)
    assert proc.returncode == 5, proc.stderr
    assert proc.stdout.splitlines()[1] == "saw the profile"
    assert proc.stderr.count("written to") == 1
    assert top_function(out) == HOT


def test_a_forked_child_that_ends_like_the_program_saves_nothing(tmp_path):
    out = tmp_path / "f.json"
    proc = spprof_cmd("run", "-o", out, PROGRAM, "--burn", "0.2", "--fork", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "child" in proc.stdout.splitlines() and "child exit 0" in proc.stdout.splitlines()
    assert proc.stderr.count("written to") == 1 and "Traceback" not in proc.stderr
    assert top_function(out) == HOT


def test_wall_mode(tmp_path):
    out = tmp_path / "w.json"
    proc = spprof_cmd("run", "--mode", "wall", "-i", "5", "--duration", "600", "-o", out, PROGRAM, "--burn", "0.3",
                      cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert load(str(out)).mode == "wall" and top_function(out) == HOT
    # spprof's own --duration thread, sampled in wall mode, is left out of the file
    assert "spprof-duration" not in out.read_text()
    assert [label.split(" ")[0] for label in load(str(out)).labels] == ["MainThread"]


# ---- output names and formats


@pytest.mark.parametrize("fmt,ext", [(None, ".speedscope.json"), ("collapsed", ".collapsed"), ("html", ".html")])
def test_default_name_is_printed_with_how_to_open_it(tmp_path, fmt, ext):
    opts = ["-f", fmt] if fmt else []
    proc = spprof_cmd("run", *opts, PROGRAM, "--burn", "0.2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    files = [p.name for p in tmp_path.iterdir()]
    assert len(files) == 1 and re.fullmatch(r"spprof-cli_program-\d+" + re.escape(ext), files[0]), files
    assert f"written to {files[0]}" in proc.stderr
    assert "to look at it:" in proc.stderr


def test_every_format_of_the_registry_can_be_written(tmp_path):
    from spprof.formats import FORMATS
    for name, module in FORMATS.items():
        out = tmp_path / f"p{module.EXTENSIONS[0]}"
        proc = spprof_cmd("run", "-o", out, PROGRAM, "--burn", "0.1", cwd=tmp_path)
        assert proc.returncode == 0 and out.stat().st_size > 0, (name, proc.stderr)
        assert f"({name})" in proc.stderr


def test_saved_stacks_start_at_the_program_not_at_spprofs_launcher(tmp_path):
    out = tmp_path / "p.json"
    proc = spprof_cmd("run", "-o", out, PROGRAM, "--burn", "0.3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    used = {i for p in doc["profiles"] for stack in p["samples"] for i in stack}
    files = {doc["shared"]["frames"][i].get("file", "") for i in used}
    assert not [f for f in files if f.endswith(("_run.py", "cli.py", "runpy.py", "__main__.py"))], files
    roots = {doc["shared"]["frames"][p["samples"][0][0]]["name"] for p in doc["profiles"] if p["samples"]}
    assert roots == {"<module>"}, roots


def test_the_launchers_own_work_is_not_in_the_profile(tmp_path):
    # After the program's module ends the launcher waits for its threads, as the interpreter
    # would: in wall mode every tick finds the main thread there, outside the program's code.
    script = tmp_path / "ends_first.py"
    script.write_text("import threading, time\n"
                      "threading.Thread(target=time.sleep, args=(0.5,), name='late').start()\n")
    out = tmp_path / "p.json"
    proc = spprof_cmd("run", "-o", out, "--mode", "wall", "-i", "5", script, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    frames = doc["shared"]["frames"]
    late = [p for p in doc["profiles"] if p["name"].startswith("late")]
    assert late and len(late[0]["samples"]) > 20  # the wait was sampled, on the thread that waits
    for p in doc["profiles"]:
        if p["name"].startswith("MainThread"):
            assert all(frames[s[0]]["name"] == "<module>" for s in p["samples"]), p["samples"]


# ---- errors and help


@pytest.mark.parametrize("args", [
    ["run", "--bogus", "x.py"], ["run"], ["run", "no_such_script.py"], ["run", "-m", "no_such_module_x"],
    ["run", "-m", "email"],  # a package without __main__ (json has one since 3.14)
    ["run", "-f", "svg", "x.py"], ["run", "-i", "0", str(PROGRAM)], ["run", "-o", "/no/such/dir/p.json", str(PROGRAM)],
    ["report"], ["view"], ["frobnicate"], [],
], ids=lambda a: " ".join(a) or "nothing")
def test_a_wrong_command_line_is_one_line_and_exit_2(launcher, tmp_path, args):
    proc = spprof_cmd(*args, cwd=tmp_path, launcher=launcher)
    assert proc.returncode == 2
    assert len(proc.stderr.splitlines()) == 1 and "error:" in proc.stderr, proc.stderr
    assert proc.stdout == "" and list(tmp_path.iterdir()) == []


def test_version(tmp_path):
    from spprof import __version__
    proc = spprof_cmd("--version", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == f"spprof {__version__}"


@pytest.mark.parametrize("command", ["run", "report", "view"])
def test_each_command_has_help_with_examples(launcher, tmp_path, command):
    proc = spprof_cmd(command, "--help", cwd=tmp_path, launcher=launcher)
    assert proc.returncode == 0
    assert "usage:" in proc.stdout and "examples:" in proc.stdout and f"spprof {command}" in proc.stdout


def test_options_after_the_script_belong_to_the_program(tmp_path):
    proc = spprof_cmd("run", "-o", tmp_path / "p.json", PROGRAM, "--help", "-o", "x", cwd=tmp_path)
    assert proc.returncode == 0
    assert seen(proc)["argv"] == [str(PROGRAM), "--help", "-o", "x"]


# ---- report


@pytest.fixture(scope="module")
def hot_profile(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    out = folder / "hot.json"
    proc = spprof_cmd("run", "-o", out, PROGRAM, "--burn", "1", cwd=folder)
    assert proc.returncode == 0, proc.stderr
    return out


def tsv(text):
    return [line.split("\t") for line in text.splitlines()]


def test_report_piped_is_tab_separated_with_the_hot_function_on_top(launcher, hot_profile):
    proc = spprof_cmd("report", hot_profile, cwd=hot_profile.parent, launcher=launcher)
    assert proc.returncode == 0, proc.stderr
    rows = tsv(proc.stdout)
    assert rows[0] == ["self_pct", "self_ns", "self_samples", "total_pct", "total_ns", "total_samples",
                       "function", "file"]
    assert all(len(r) == 8 for r in rows)
    assert rows[1][6] == HOT and rows[1][7] == str(PROGRAM)
    assert float(rows[1][0]) > 50 and int(rows[1][1]) > 0 and int(rows[1][2]) > 0
    assert "\x1b" not in proc.stdout
    # spprof's own launcher frames are not the program's
    assert not any("spprof" + os.sep in r[7] or r[7].endswith("runpy.py") for r in rows[1:])


def test_report_by_total_limit_and_threads(hot_profile):
    by_total = tsv(spprof_cmd("report", hot_profile, "--by", "total", "-n", "2", cwd=hot_profile.parent).stdout)
    assert len(by_total) == 3 and by_total[1][6] == "<module>" and float(by_total[1][3]) == 100.0
    threads = tsv(spprof_cmd("report", hot_profile, "--threads", cwd=hot_profile.parent).stdout)
    assert threads[0][0] == "thread" and threads[1][0].startswith("MainThread") and threads[1][7] == HOT


def test_report_reads_collapsed_stacks(tmp_path):
    out = tmp_path / "p.collapsed"
    assert spprof_cmd("run", "-o", out, PROGRAM, "--burn", "0.5", cwd=tmp_path).returncode == 0
    rows = tsv(spprof_cmd("report", out, cwd=tmp_path).stdout)
    assert rows[0][:4] == ["self_pct", "self_samples", "total_pct", "total_samples"] and rows[1][4] == HOT


def test_report_of_a_file_that_is_not_a_profile_fails_in_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1}')
    proc = spprof_cmd("report", bad, cwd=tmp_path)
    assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1 and "not a Speedscope file" in proc.stderr


def on_a_terminal(cmd, cwd, timeout=120):
    """Runs cmd with stdout and stderr on a pseudo-terminal; returns (exit status, output)."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.chdir(cwd)
            os.environ["COLUMNS"] = "120"
            os.execv(cmd[0], cmd)
        finally:
            os._exit(127)
    chunks = []
    while True:
        ready, _, _ = select.select([fd], [], [], timeout)
        assert ready, "the command printed nothing for too long"
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode("utf-8", "replace")


def test_report_on_a_terminal_is_aligned_columns(hot_profile):
    status, out = on_a_terminal([sys.executable, "-m", "spprof", "report", str(hot_profile)], hot_profile.parent)
    assert status == 0
    lines = out.replace("\r\n", "\n").splitlines()
    header = next(i for i, line in enumerate(lines) if "self%" in line)
    assert "\t" not in out and "samples" in lines[header]
    first = lines[header + 1]
    assert HOT in first and re.match(r"\s*\d+\.\d%\s+[\d.]+ m?s\s+\d+\s+\d+\.\d%", first), first
    # Columns line up: each row's function starts where the header's "function" does
    column = lines[header].index("function") - len("\x1b[1m") if lines[header].startswith("\x1b[1m") \
        else lines[header].index("function")
    assert first[column:].startswith(HOT)


def test_run_shows_a_status_line_on_a_terminal_only(tmp_path):
    status, out = on_a_terminal([str(CONSOLE_SCRIPT), "run", "-o", str(tmp_path / "t.json"), str(PROGRAM),
                                 "--burn", "1.5"], tmp_path)
    assert status == 0
    assert re.search(r"\r\x1b\[2Kspprof: [\d.]+ s, \d+ samples, \d+ dropped", out), repr(out[-500:])
    piped = spprof_cmd("run", "-o", tmp_path / "p.json", PROGRAM, "--burn", "1.5", cwd=tmp_path)
    assert piped.returncode == 0 and "\r" not in piped.stderr and "\x1b" not in piped.stderr


# ---- HTML


def chromium():
    path = shutil.which("chromium") or "/usr/bin/chromium"
    assert os.access(path, os.X_OK), "chromium is needed for the HTML tests (apt-get install chromium)"
    return path


def headless(url, tmp_path, *args):
    cmd = [chromium(), "--headless", "--disable-gpu", "--no-first-run", "--virtual-time-budget=5000",
           f"--user-data-dir={tmp_path / 'chromium'}", *args, url]
    if os.geteuid() == 0:
        cmd.insert(1, "--no-sandbox")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=tmp_path)


def png_is_a_picture(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    idat, i = b"", 8
    while i < len(data):
        (n,), kind = struct.unpack(">I", data[i:i + 4]), data[i + 4:i + 8]
        if kind == b"IDAT":
            idat += data[i + 8:i + 8 + n]
        i += 12 + n
    # A blank or one-colour page compresses to a few kilobytes of few distinct byte values.
    return width >= 800 and height >= 400 and len(data) > 8000 and len(set(zlib.decompress(idat))) > 128


def assert_offline(page):
    text = page.read_text()
    for needle in ("http://", "https://", "src=", "href=", "url(", "@import", "<link", "fetch(", "XMLHttpRequest"):
        assert needle not in text, f"{page.name} refers to {needle!r}: it must need no network"
    assert text.count("<script") == 2  # the data and the inline code, nothing loaded


def test_html_from_run_renders_the_hot_function_in_chromium(tmp_path):
    page = tmp_path / "flame.html"
    proc = spprof_cmd("run", "-o", page, PROGRAM, "--burn", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert_offline(page)
    dom = headless(page.as_uri(), tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    frames = re.findall(r'<div class="f[^"]*"[^>]*>([^<]*)</div>', dom.stdout)
    assert HOT in frames and "&lt;module&gt;" in frames and "main" in frames
    assert "_run_script" not in frames and "run_module" not in frames  # the launcher is left out
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    png = ARTIFACTS / "cli-flamegraph.png"
    if png.exists():
        png.unlink()
    shot = headless(page.as_uri(), tmp_path, "--window-size=1200,700", f"--screenshot={png}", "--hide-scrollbars")
    assert shot.returncode == 0 and png.exists(), shot.stderr[-2000:]
    assert png_is_a_picture(png)


def test_view_converts_speedscope_and_its_search_and_thread_selector_work(hot_profile, tmp_path):
    page = tmp_path / "view.html"
    proc = spprof_cmd("view", hot_profile, "-o", page, cwd=tmp_path)
    assert proc.returncode == 0 and page.exists(), proc.stderr
    assert_offline(page)
    dom = headless(page.as_uri() + "#search=cli_hot&thread=0", tmp_path, "--dump-dom").stdout
    assert re.search(r'<div class="f m"[^>]*>' + HOT + "</div>", dom)
    matched = re.search(r'id="matched">matched: ([\d.]+)%', dom)
    assert '<label id="tasks" hidden' in dom  # no asyncio task in this profile: no task selector
    assert matched and float(matched.group(1)) > 50
    # One thread selected: the root is that thread
    assert re.findall(r'<div class="f[^"]*"[^>]*>([^<]*)</div>', dom)[0].startswith("MainThread")
    # Without -o the page goes beside the profile
    default = spprof_cmd("view", hot_profile, cwd=tmp_path)
    assert default.returncode == 0 and hot_profile.with_suffix(".html").exists()


def page_of(tmp_path, title, frames, threads):
    """The HTML page of a Speedscope file: frames as (name, file, line), threads as
    (name, [(stack, weight_ns), ...]) with one entry per sample."""
    from spprof.formats.html import render
    doc = {"name": title, "shared": {"frames": [{"name": n, "file": f, "line": line} for n, f, line in frames]},
           "profiles": [{"type": "sampled", "name": name, "unit": "nanoseconds",
                         "samples": [list(s) for s, _ in samples], "weights": [w for _, w in samples]}
                        for name, samples in threads]}
    path = tmp_path / "page-source.json"
    path.write_text(json.dumps(doc))
    return render(load(str(path)))


def test_names_cannot_break_out_of_the_data(tmp_path):
    evil = "</script><script>document.title='pwned'</script>"
    page = page_of(tmp_path, evil, [(evil, "/x.py", 1)], [("t </script>", [((0,), 1)])])
    assert page.count("</script>") == 2 and "<script>document" not in page


def test_html_click_on_a_frame_zooms_and_escape_resets_in_chromium(tmp_path):
    page = page_of(tmp_path, "spprof cpu profile: zoom test", [("a", "/a.py", 1), ("b", "/a.py", 2), ("c", "/a.py", 3)],
                   [("MainThread (tid 1)", [((0, 1), 1_000_000)] * 3 + [((0, 2), 1_000_000)])])
    # The test's own copy clicks "b", notes the widths, presses Escape and notes them again.
    probe = """<script>
    const widths = () => [...document.querySelectorAll("#graph .f")].map(e => e.textContent + "=" + e.style.width);
    [...document.querySelectorAll("#graph .f")].find(e => e.textContent === "b").click();
    const zoomed = widths().join(" ");
    document.dispatchEvent(new KeyboardEvent("keydown", {key: "Escape"}));
    document.body.insertAdjacentHTML("beforeend", "<pre id=probe>" + zoomed + "|" + widths().join(" ") + "</pre>");
    </script></body>"""
    (tmp_path / "zoom.html").write_text(page.replace("</body>", probe))
    dom = headless((tmp_path / "zoom.html").as_uri(), tmp_path, "--dump-dom").stdout
    zoomed, reset = re.search(r'<pre id="probe">([^<]*)</pre>', dom).group(1).split("|")
    assert zoomed == "all threads=100% a=100% b=100%"  # c lies outside the zoomed range
    assert reset == "all threads=100% a=100% b=75% c=25%"


def test_html_task_selector_shows_one_tasks_stacks_in_chromium(tmp_path):
    # Two tasks under the loop's frames and one stack outside any task; the task of a stack is
    # its innermost task frame, as `spprof report --tasks` groups them.
    frames = [("run_forever", "/l.py", 1), ("Task-1", "<asyncio task>", 0), ("parse", "/a.py", 2),
              ("Task-2", "<asyncio task>", 0), ("fetch", "/a.py", 3), ("select", "/l.py", 4)]
    page = page_of(tmp_path, "spprof cpu profile: tasks", frames,
                   [("MainThread (tid 1)", [((0, 1, 2), 3_000_000), ((0, 3, 4), 1_000_000),
                                            ((0, 1, 2, 3, 4), 2_000_000), ((0, 5), 4_000_000)])])
    (tmp_path / "tasks.html").write_text(page)
    uri = (tmp_path / "tasks.html").as_uri()

    def shown(hash_):
        dom = headless(uri + hash_, tmp_path, "--dump-dom").stdout
        boxes = re.findall(r'<div class="f[^"]*"[^>]*style="[^"]*width: ([\d.]+)%[^"]*"[^>]*>([^<]*)</div>', dom)
        return dom, {name: float(w) for w, name in boxes}

    dom, everything = shown("")
    assert set(everything) >= {"parse", "fetch", "select", "Task-1", "Task-2"}
    assert 'id="tasks">' in dom  # the selector is shown: the profile has tasks
    # Task-2 is innermost in (0,3,4) and (0,1,2,3,4): 3 ms of 3 + 1 + 2 + 4 ms.
    assert re.search(r'<option value="Task-2">Task-2 — 30.0%</option>', dom), dom[-3000:]
    _, task1 = shown("#task=Task-1")  # only (0,1,2): Task-2 is innermost in the nested stack
    assert task1 == {"all threads › Task-1": 100, "run_forever": 100, "Task-1": 100, "parse": 100}, task1
    _, task2 = shown("#task=Task-2")
    assert "select" not in task2 and task2["fetch"] > 0 and task2["all threads › Task-2"] == 100, task2
    _, outside = shown("#task=")
    assert outside == {"all threads › outside any task": 100, "run_forever": 100, "select": 100}, outside


@pytest.mark.parametrize("how", ["api", "-o", "default name"])
def test_a_relative_output_path_is_where_the_program_started(tmp_path, how):
    # Resolved once, at start: a program that changes folder gets its profile where it was
    # asked for, and the path named on stderr is the path written.
    if how == "api":
        proc = python_cmd(WORKLOADS / "chdir_program.py", "api", "rel.json", cwd=tmp_path)
    elif how == "-o":
        proc = spprof_cmd("run", "-o", "rel.json", WORKLOADS / "chdir_program.py", "plain", cwd=tmp_path)
    else:
        proc = spprof_cmd("run", WORKLOADS / "chdir_program.py", "plain", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    written = [p.name for p in tmp_path.iterdir() if p.suffix == ".json"]
    assert written == (["rel.json"] if how != "default name" else [f for f in written if f.startswith("spprof-")])
    assert len(written) == 1 and not list((tmp_path / "elsewhere").iterdir())
    if how != "api":
        assert f"written to {tmp_path / written[0]}" in proc.stderr


@pytest.mark.parametrize("late", [False, True])
def test_start_inside_a_program_run_by_spprof_run_joins_its_profile(tmp_path, late):
    out = tmp_path / "run.json"
    own = tmp_path / "own.json"
    how = ["--duration", "0.5"] if late else []
    proc = spprof_cmd("run", *how, "-o", out, WORKLOADS / "start_under_run.py", own, *(["late"] if late else []),
                      cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    said = seen(proc)
    # stop() of a joined start(): an empty Profile, also once `spprof run` itself has stopped
    assert said == {"samples": 0, "again": 0, "active": not late}
    assert proc.stderr.count("joins the profile of `spprof run`") == 1, proc.stderr
    assert f"{own} will not be written" in proc.stderr and not own.exists()
    assert "own_work" in {f["name"] for f in json.loads(out.read_text())["shared"]["frames"]}


def test_speedscope_frames_hold_none_of_spprof_runs_own(tmp_path):
    out = tmp_path / "p.json"
    proc = spprof_cmd("run", "-o", out, PROGRAM, "--burn", "0.2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    frames = json.loads(out.read_text())["shared"]["frames"]
    assert HOT in {f["name"] for f in frames}
    assert not {f["name"] for f in frames} & {"_cmd_run", "run_module", "_run_code", "_run_module_as_main"}, frames
    assert not [f for f in frames if f.get("file", "").endswith(("/spprof/cli.py", "/spprof/_run.py", "runpy.py"))]
