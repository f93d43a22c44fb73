"""The `spprof` command: run a program under the profiler, report on a profile, view it as HTML."""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from collections import defaultdict
from typing import Any, DefaultDict, Dict, Iterable, List, NoReturn, Optional, Sequence, Tuple

RUN_EXAMPLES = """examples:
  spprof run app.py --port 8080          profile app.py; options after the script are its own
  spprof run -m http.server 8000         profile a module, as `python -m` runs it
  spprof run -i 1 --mode wall -o out.html app.py
  spprof run --duration 30 -f collapsed server.py   sample the first 30 s, let it run on
  python -m spprof run app.py            the same without the console script

The profile is saved when the program returns, raises, calls sys.exit, or gets Ctrl-C or
SIGTERM. Without -o it goes to spprof-PROGRAM-PID with the format's extension."""

REPORT_EXAMPLES = """examples:
  spprof report profile.json             top 20 functions by self time
  spprof report profile.json --by total -n 50
  spprof report profile.json --threads   a table per thread
  spprof report profile.json --tasks     a table per asyncio task
  spprof report profile.json | sort -t$'\\t' -k4 -rn   tab-separated when piped

Reads Speedscope files that spprof wrote and collapsed stacks. In cpu mode time is CPU time."""

VIEW_EXAMPLES = """examples:
  spprof view profile.json               writes profile.html beside it
  spprof view profile.json -o /tmp/flame.html

The page is one file with no network access: click a frame to zoom (Escape resets), search
with a regular expression to highlight frames and sum their share, pick one thread or all."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, argparse's exit status
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parsers(prog: str) -> Tuple[_Parser, _Parser]:
    from ._format_registry import FORMATS
    from ._version import __version__
    parser = _Parser(prog=prog, description="spprof: an in-process sampling profiler for Python.",
                     epilog="Run `%(prog)s COMMAND --help` for a command's options and examples.")
    parser.add_argument("--version", action="version", version=f"spprof {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    fmt = argparse.RawDescriptionHelpFormatter

    run = sub.add_parser("run", help="run a script or module under the profiler and save the profile",
                         epilog=RUN_EXAMPLES, formatter_class=fmt, allow_abbrev=False)
    run.add_argument("-i", "--interval", type=float, default=10.0, metavar="MS",
                     help="sampling interval in milliseconds, 1 to 1000 (default 10)")
    run.add_argument("-o", "--output", metavar="FILE", help="where to save; the extension picks the format")
    run.add_argument("-f", "--format", choices=sorted(FORMATS), metavar="FORMAT",
                     help=f"{', '.join(sorted(FORMATS))} (default: from -o's extension, else speedscope)")
    run.add_argument("--mode", choices=("cpu", "wall"), default="cpu",
                     help="cpu: threads that ran, weighted by CPU time (default); wall: every thread every tick")
    run.add_argument("--duration", type=float, metavar="S",
                     help="stop sampling and save after S seconds; the program goes on")
    cont = run.add_argument_group("continuous profiling (also from SPPROF_* variables)")
    cont.add_argument("--push", metavar="URL", help="push a pprof window to this Grafana Pyroscope server "
                      "(or Alloy) every --window seconds, instead of one file at the end")
    cont.add_argument("--output-dir", metavar="DIR", help="write a pprof window to this folder every --window seconds")
    cont.add_argument("--app-name", metavar="NAME", help="the application's name in Pyroscope (default: the program's)")
    cont.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="a tag of every window (repeatable)")
    cont.add_argument("--window", type=float, metavar="S", help="seconds a window (default 10)")
    run.add_argument("-m", dest="module", metavar="MODULE", help="run a module as `python -m` does")
    run.add_argument("script", nargs="?", help="the script to run")
    run.add_argument("args", nargs=argparse.REMAINDER, help="the program's arguments")
    run.set_defaults(func=_cmd_run, parser=run)

    report = sub.add_parser("report", help="print the functions that took the most time",
                            epilog=REPORT_EXAMPLES, formatter_class=fmt)
    report.add_argument("file", help="a Speedscope (.json) or collapsed file")
    grouping = report.add_mutually_exclusive_group()
    grouping.add_argument("--threads", action="store_true", help="one table per thread")
    grouping.add_argument("--tasks", action="store_true",
                          help="one table per asyncio task (the innermost task a sample ran in), and one for the rest")
    report.add_argument("-n", type=int, default=20, metavar="N", help="rows per table (default 20, 0 for all)")
    report.add_argument("--by", choices=("self", "total"), default="self", help="sort by self or total time")
    report.set_defaults(func=_cmd_report, parser=report)

    view = sub.add_parser("view", help="write a self-contained HTML flame graph of a profile",
                          epilog=VIEW_EXAMPLES, formatter_class=fmt)
    view.add_argument("file", help="a Speedscope (.json) or collapsed file")
    view.add_argument("-o", "--output", metavar="FILE", help="the HTML file (default: FILE with .html)")
    view.set_defaults(func=_cmd_view, parser=view)
    return parser, run


def _split_program(run: argparse.ArgumentParser, argv: List[str]) -> Tuple[List[str], List[str]]:
    """Splits `run`'s arguments after the script (or -m MODULE): the rest is the program's."""
    takes_value = {s for a in run._actions if a.option_strings and a.nargs != 0 for s in a.option_strings}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--" or arg == "-m":
            return argv[:i + 2], argv[i + 2:]
        if (arg.startswith("-m") and not arg.startswith("--")) or not arg.startswith("-") or arg == "-":
            return argv[:i + 1], argv[i + 1:]
        i += 2 if arg in takes_value else 1
    return argv, []


def main(argv: Optional[Sequence[str]] = None, prog: str = "spprof") -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    parser, run = _parsers(prog)
    if args and args[0] == "run":
        head, rest = _split_program(run, args[1:])
        ns = run.parse_args(head)  # so that errors name `run`
        ns.args = rest
    else:
        ns = parser.parse_args(args)
    status: int = ns.func(ns)
    return status


# ---- run


def _program_name(ns: argparse.Namespace) -> str:
    name = ns.module if ns.module else os.path.splitext(os.path.basename(os.path.normpath(ns.script)))[0]
    return re.sub(r"[^\w.-]", "_", name) or "program"


def _cmd_run(ns: argparse.Namespace) -> int:
    import importlib.util

    from . import _run
    from ._format_registry import FORMATS, format_for
    from ._session import check_output_path
    p: _Parser = ns.parser
    if ns.script is None and ns.module is None:
        p.error("missing script: give `script.py [args...]` or `-m module [args...]`")
    if ns.script is not None and not os.path.exists(ns.script):
        p.error(f"can't open file {ns.script!r}: [Errno 2] No such file or directory")
    if ns.module is not None:
        _run.set_path0(os.getcwd())  # where `python -m` looks first
        try:
            spec = importlib.util.find_spec(ns.module)
            # A package runs as its __main__ submodule, as under `python -m`.
            runnable = spec is not None and (spec.submodule_search_locations is None
                                             or importlib.util.find_spec(f"{ns.module}.__main__") is not None)
        except (ImportError, ValueError):
            spec, runnable = None, False
        if spec is None:
            p.error(f"no module named {ns.module!r}")
        if not runnable:
            p.error(f"no module named {ns.module}.__main__; {ns.module!r} is a package and cannot be run")
    from . import continuous
    try:
        live = continuous.cli_options(ns.push, ns.output_dir, ns.app_name, ns.tag, ns.window, ns.interval, ns.mode,
                                      _program_name(ns), os.environ)
    except (ValueError, TypeError, OSError) as e:
        p.error(str(e))
    if live is not None:
        if ns.output or ns.duration is not None:
            p.error("-o/--output and --duration make one profile; --push and --output-dir stream windows")
        return _run.run(continuous.RunSession(live), ns.script, ns.module, ns.args)  # type: ignore[arg-type]
    if ns.output:
        path, fmt = ns.output, format_for(ns.output, ns.format)
    else:
        fmt = ns.format or "speedscope"
        path = f"spprof-{_program_name(ns)}-{os.getpid()}{FORMATS[fmt].EXTENSIONS[0]}"
    if ns.duration is not None and not ns.duration > 0:
        p.error(f"--duration must be a positive number of seconds, got {ns.duration:g}")
    if not 1 <= ns.interval <= 1000:
        p.error(f"-i/--interval must be in [1, 1000] ms, got {ns.interval:g}")
    try:
        where = check_output_path(path) or path  # absolute: the program may change folder
    except OSError as e:
        p.error(str(e))
    session = _run.Session(where, fmt, ns.interval, ns.mode, ns.duration, shown=path)
    return _run.run(session, ns.script, ns.module, ns.args)


# ---- report


def _human(ns: int) -> str:
    for unit, size in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= size:
            return f"{ns / size:.3g} {unit}" if ns < 100 * size else f"{ns / size:.0f} {unit}"
    return f"{ns} ns" if ns else "0"


Stats = DefaultDict[Tuple[str, str], List[int]]  # (function, file) -> [samples, weight]


def _function_stats(frames: List[Tuple[str, str, int]], stacks: Iterable[Tuple[Tuple[int, ...], List[int]]]
                    ) -> Tuple[Stats, Stats, int, int]:
    """Self and total (samples, weight) per function; a recursive function counts once a sample."""
    self_: Stats = defaultdict(lambda: [0, 0])
    total: Stats = defaultdict(lambda: [0, 0])
    all_n = all_w = 0
    for stack, (n, w) in stacks:
        all_n += n
        all_w += w
        if not stack:
            continue
        keys = [(frames[f][0], frames[f][1]) for f in stack]
        self_[keys[-1]][0] += n
        self_[keys[-1]][1] += w
        for k in set(keys):
            total[k][0] += n
            total[k][1] += w
    return self_, total, all_n, all_w


def _report_rows(frames: List[Tuple[str, str, int]], stacks: Iterable[Tuple[Tuple[int, ...], List[int]]], by: str,
                 limit: int, grand_w: int) -> List[Dict[str, Any]]:
    self_, total, _, _ = _function_stats(frames, stacks)
    order = self_ if by == "self" else total
    keys = sorted(total, key=lambda k: (-order[k][1] if k in order else 0, -total[k][1], k))
    if limit > 0:
        keys = keys[:limit]
    rows = []
    for k in keys:
        s_n, s_w = self_[k] if k in self_ else (0, 0)
        t_n, t_w = total[k]
        rows.append({"self_pct": 100.0 * s_w / grand_w if grand_w else 0.0, "self_w": s_w, "self_n": s_n,
                     "total_pct": 100.0 * t_w / grand_w if grand_w else 0.0, "total_w": t_w, "total_n": t_n,
                     "function": k[0], "file": k[1]})
    return rows


def _print_tsv(rows: List[Dict[str, Any]], timed: bool, thread: Optional[str], header: bool,
               group: str = "thread") -> None:
    cols = ["self_pct"] + (["self_ns"] if timed else []) + ["self_samples", "total_pct"] \
        + (["total_ns"] if timed else []) + ["total_samples", "function", "file"]
    if thread is not None:
        cols.insert(0, group)
    if header:
        print("\t".join(cols))
    for r in rows:
        values = [f"{r['self_pct']:.2f}"] + ([str(r["self_w"])] if timed else []) + [str(r["self_n"]),
                  f"{r['total_pct']:.2f}"] + ([str(r["total_w"])] if timed else []) + [str(r["total_n"]),
                  r["function"], r["file"]]
        if thread is not None:
            values.insert(0, thread)
        print("\t".join(v.replace("\t", " ").replace("\n", " ") for v in values))


def _print_table(rows: List[Dict[str, Any]], timed: bool, width: int, bold: bool) -> None:
    head = ["self%"] + (["self"] if timed else []) + ["samples", "total%"] + (["total"] if timed else []) \
        + ["samples", "function"]
    cells = []
    for r in rows:
        cells.append([f"{r['self_pct']:.1f}%"] + ([_human(r["self_w"])] if timed else []) + [str(r["self_n"]),
                     f"{r['total_pct']:.1f}%"] + ([_human(r["total_w"])] if timed else []) + [str(r["total_n"])])
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(head[:-1])]
    prefix_len = sum(widths) + 2 * len(widths)
    line = "  ".join(h.rjust(w) for h, w in zip(head, widths)) + "  " + head[-1]
    print(f"\x1b[1m{line}\x1b[0m" if bold else line)
    cwd = os.getcwd() + os.sep
    for r, c in zip(rows, cells):
        where = r["file"][len(cwd):] if r["file"].startswith(cwd) else r["file"]
        text = f"{r['function']}  {where}" if where else r["function"]
        room = max(width - prefix_len, 20)
        if len(text) > room:  # keep the function and the file's end
            keep = room - len(r["function"]) - 3
            text = f"{r['function']}  …{where[-keep:]}" if keep > 0 else r["function"][:room - 1] + "…"
        print("  ".join(v.rjust(w) for v, w in zip(c, widths)) + "  " + text)


def _cmd_report(ns: argparse.Namespace) -> int:
    from ._load import load
    from ._tables import cpu_share
    try:
        data = load(ns.file)
    except (OSError, ValueError) as e:
        sys.stderr.write(f"{ns.parser.prog}: error: {e}\n")
        return 1
    timed = data.unit == "nanoseconds"
    tty = sys.stdout.isatty()
    grand_n, grand_w = data.total()
    what = {"cpu": "CPU time", "wall": "wall time"}.get(data.mode, "time") if timed else "samples"
    if tty:
        width = shutil.get_terminal_size().columns
        bold = "NO_COLOR" not in os.environ
        amount = f"{_human(grand_w)} of {what}, " if timed else ""
        print(f"{data.title}\n{grand_n} samples, {amount}{len(data.labels)} thread(s); "
              f"functions by {ns.by} time, percentages of the whole profile")
    if data.process_cpu_ns:
        cpu_line = cpu_share(grand_w, data.process_cpu_ns)
        if tty:
            print(cpu_line[0].upper() + cpu_line[1:])
        else:
            sys.stderr.write(f"spprof: {cpu_line}\n")
    groups: List[Tuple[Optional[str], Iterable[Tuple[Tuple[int, ...], List[int]]]]]
    per_thread = list(zip(data.labels, data.by_thread()))
    if ns.threads:
        ordered = sorted(per_thread, key=lambda t: -sum(w for _, w in t[1].values()))
        groups = [(label, list(stacks.items())) for label, stacks in ordered]
    elif ns.tasks:
        groups = _by_task(data.located_frames(), per_thread)
    else:
        groups = [(None, [item for _, stacks in per_thread for item in stacks.items()])]
    frames = data.located_frames()
    for i, (thread, stacks) in enumerate(groups):
        rows = _report_rows(frames, stacks, ns.by, ns.n, grand_w)
        if tty:
            if thread is not None:
                share = sum(w for _, (_, w) in stacks)
                print(f"\n{thread}: {100.0 * share / grand_w if grand_w else 0:.1f}%"
                      + (f", {_human(share)}" if timed else ""))
            else:
                print()
            _print_table(rows, timed, width, bold)
        else:
            _print_tsv(rows, timed, thread, header=i == 0, group="task" if ns.tasks else "thread")
    return 0


def _by_task(frames: List[Tuple[str, str, int]], per_thread: List[Tuple[str, Dict[Tuple[int, ...], List[int]]]]
             ) -> List[Tuple[Optional[str], Iterable[Tuple[Tuple[int, ...], List[int]]]]]:
    """The stacks grouped by the innermost asyncio task they ran in, the most time first; the
    stacks outside any task (the loop itself, other threads) last, as "(no task)"."""
    from ._model import TASK_FILE
    tasks: Dict[str, Dict[Tuple[int, ...], List[int]]] = {}
    for _, stacks in per_thread:
        for stack, (n, w) in stacks.items():
            task = next((frames[f][0] for f in reversed(stack) if frames[f][1] == TASK_FILE), "")
            entry = tasks.setdefault(task, {}).setdefault(stack, [0, 0])
            entry[0] += n
            entry[1] += w
    ordered = sorted(tasks.items(), key=lambda t: (t[0] == "", -sum(w for _, w in t[1].values())))
    return [(name or "(no task)", list(stacks.items())) for name, stacks in ordered]


# ---- view


def _html_name(path: str) -> str:
    lower = path.lower()
    for ext in (".speedscope.json", ".json", ".collapsed", ".folded"):
        if lower.endswith(ext):
            return path[:-len(ext)] + ".html"
    return path + ".html"


def _cmd_view(ns: argparse.Namespace) -> int:
    from ._load import load
    from ._session import check_output_path
    from .formats.html import write_tables
    out = ns.output or _html_name(ns.file)
    try:
        data = load(ns.file)
        check_output_path(out)
        write_tables(data, out)
    except (OSError, ValueError) as e:
        sys.stderr.write(f"{ns.parser.prog}: error: {e}\n")
        return 1
    sys.stderr.write(f"spprof: wrote {out}; open it in a browser (one file, no network needed)\n")
    return 0
