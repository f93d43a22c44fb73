"""The sampler never crashes, stalls or lies, whatever the program does under it."""
import ast
import json
import os
import re
import sys
from pathlib import Path

import pytest

from conftest import WORKLOADS, run_workload, tiny_caller


COMPREHENSIONS = {ast.ListComp: "<listcomp>", ast.SetComp: "<setcomp>", ast.DictComp: "<dictcomp>",
                  ast.GeneratorExp: "<genexpr>", ast.Lambda: "<lambda>"}


def defined_names(path):
    """Every function's name and qualified name in a source file."""
    names = set()

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names.update({child.name, prefix + child.name})
                visit(child, prefix + child.name + ".<locals>.")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            elif type(child) in COMPREHENSIONS:  # functions of their own until 3.12
                names.update({COMPREHENSIONS[type(child)], prefix.rstrip(".") and prefix + COMPREHENSIONS[type(child)]})
                visit(child, prefix)
            else:
                visit(child, prefix)

    visit(ast.parse(Path(path).read_text()), "")
    return names | {"<module>"}


def test_torture_at_1ms_for_20s():
    seconds = float(os.environ.get("SPPROF_TORTURE_SECONDS", "20"))
    proc, result = run_workload("torture", seconds, timeout=seconds * 6 + 60)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-6000:])
    assert result["samples"] > 1000
    workload = str(WORKLOADS / "torture.py")
    allowed = defined_names(workload)
    for name, filename in result["frames"]:
        if filename == workload:
            assert name in allowed, name
        elif name in ("<unverified>", "<truncated>", "<unknown>"):
            assert filename == ""
        elif filename == "<asyncio task>":  # the workload's tasks have asyncio's own names
            assert re.fullmatch(r"Task-\d+", name), name
        elif filename == "<string>":  # compiled from a string by the standard library
            assert name in result["from_strings"], (name, result["from_strings"])
        else:
            # the standard library's own frames (threading, asyncio): real files or frozen modules
            assert os.path.exists(filename) or filename.startswith("<frozen"), (name, filename)
    counters = result["counters"]
    assert "torn_walks" in counters and counters["torn_walks"] >= 0
    seen_threads = set(result["threads"])
    assert {"churn", "generators", "coroutines", "exceptions", "recursion", "MainThread"} <= seen_threads
    sys.stderr.write(f"torture: {result['samples']} samples, counters {counters}\n")


def test_reused_code_addresses_never_name_a_function_that_was_not_running():
    proc, result = run_workload("code_reuse", 1000, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = {name: (t0, t1) for name, t0, t1 in result["runs"]}
    assert len(result["seen"]) > 500
    # A sample's thread was read after the previous sample's time was taken and before its own:
    # if that span lies wholly outside its function's run, the sample was named after another code
    # object at the address. The span, not one instant: a busy machine can delay the sampler
    # between a read and its time stamp by a millisecond or more.
    for before, t, name in result["seen"]:
        t0, t1 = runs[name]
        assert t0 <= t and before <= t1, (name, t0, before, t, t1)


def profile_tiny_calls():
    import spprof
    spprof.start(interval_ms=1)
    tiny_caller(15_000_000)
    return spprof.stop()


def test_short_calls_are_sampled_not_dropped():
    # A frame that lives 100 ns is always moving under a walk. Such samples must be kept (the copy
    # is still one stack), not rejected as torn: that would hide every short function.
    profile = profile_tiny_calls()
    collected = profile.counters["collected_samples"]
    assert collected > 200  # of about 600 ticks: the loop runs long enough on a busy machine too
    assert profile.counters["torn_walks"] <= 0.02 * collected, profile.counters
    for s in profile.samples:
        if s.frames[-1].function_name == "tiny":
            assert s.frames[-2].function_name == "tiny_caller"


def test_short_calls_get_their_share():
    # py-spy, which stops the process for a consistent snapshot, puts about a fifth of this
    # workload in `tiny` (bench/short_calls.py); spprof must not hide it.
    profile = profile_tiny_calls()
    in_tiny = sum(1 for s in profile.samples if s.frames[-1].function_name == "tiny")
    assert in_tiny >= 0.08 * len(profile.samples), in_tiny


@pytest.mark.parametrize("mode, code, saved", [("return", 0, True), ("sys.exit", 7, True), ("raise", 1, True),
                                               ("os._exit", 5, False), ("sigterm", -15, False)])
def test_interpreter_exit_while_sampling(tmp_path, mode, code, saved):
    out = tmp_path / "exit.json"
    proc, _ = run_workload("exit_while_profiling", mode, out, timeout=60)
    assert proc.returncode == code, (proc.returncode, proc.stderr[-3000:])
    assert "about to exit" in proc.stdout
    assert "Fatal Python error" not in proc.stderr and "Segmentation" not in proc.stderr
    # saved at exit wherever the interpreter ends normally; never half a file
    assert out.exists() is saved
    if saved:
        doc = json.loads(out.read_text())
        assert any(f["name"] == "work" for f in doc["shared"]["frames"])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".spprof-")] == []


def test_a_signal_handler_raising_just_after_start_leaves_a_profile_that_stops():
    proc, out = run_workload("signal_reentry", "raise_after_start", timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out["start"] == "ValueError: from the handler"
    assert out["active"] is True
    assert out["stop"] == "Profile"
    assert (out["start_again"], out["stop_again"]) == ("NoneType", "Profile")


def test_a_signal_handler_calling_stop_inside_start_or_stop_never_deadlocks():
    # Re-entry on the same thread must raise or work; here the handler's stop() works and the
    # call it interrupted finds the profiler stopped.
    proc, out = run_workload("signal_reentry", "stop_in_handler", timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out["handler_in_stop"] == ["Profile"]
    assert out["stop"] == "RuntimeError: Profiler not running"
    assert out["handler_in_start"] == ["Profile"] and out["start"] == "NoneType"
    assert out["active"] is False
    assert (out["start_again"], out["stop_again"]) == ("NoneType", "Profile")


def test_sigterm_while_profile_holds_the_lock_under_spprof_run_saves_and_dies(tmp_path):
    import subprocess
    out = tmp_path / "term.json"
    proc = subprocess.run([sys.executable, "-m", "spprof", "run", "-o", str(out),
                           str(WORKLOADS / "signal_reentry.py"), "sigterm_under_run"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == -15, (proc.returncode, proc.stderr[-3000:])
    assert "still alive" not in proc.stdout
    assert json.loads(out.read_text())["profiles"]


def test_a_profile_started_after_spprofs_exit_handler_is_refused_clearly(tmp_path):
    proc, _ = run_workload("atexit_late", tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    said = {k: v for line in proc.stdout.splitlines() if line.startswith("{") for k, v in json.loads(line).items()}
    assert said["late_block"] is True and (tmp_path / "block.json").exists()
    assert "exit handler" in said["late_start"] and "never be stopped or saved" in said["late_start"]
    assert not (tmp_path / "late.json").exists()
