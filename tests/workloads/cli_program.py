"""A program for tests/test_cli.py: tells what it sees, burns CPU, then ends as its arguments say.

    cli_program.py [--burn S] [--fork] [--wait-for FILE] [--forever] [--own-sigterm] [--exit N | --raise] [args...]
"""
import json
import os
import signal
import sys
import time


def spprof_cli_hot(seconds):
    end = time.process_time() + seconds
    n = 0
    while time.process_time() < end:
        for i in range(10_000):
            n += i * i
    return n


def main():
    args = sys.argv[1:]
    print(json.dumps({"argv": sys.argv, "name": __name__, "path0": sys.path[0], "file": __file__,
                      "main_is_me": sys.modules["__main__"].__dict__ is globals()}), flush=True)
    if "--own-sigterm" in args:
        def handler(signum, frame):
            print("own handler", flush=True)
            sys.exit(7)
        signal.signal(signal.SIGTERM, handler)
    if "--burn" in args:
        spprof_cli_hot(float(args[args.index("--burn") + 1]))
    if "--fork" in args:  # the child runs on to the program's end too, as forked servers do
        pid = os.fork()
        if pid:
            _, status = os.waitpid(pid, 0)
            print(f"child exit {os.waitstatus_to_exitcode(status)}", flush=True)
        else:
            print("child", flush=True)
    if "--wait-for" in args:  # burns until spprof has saved its profile, so it ran on after the save
        path = args[args.index("--wait-for") + 1]
        deadline = time.monotonic() + 120
        while not os.path.exists(path) and time.monotonic() < deadline:
            spprof_cli_hot(0.02)
        print("saw the profile" if os.path.exists(path) else "no profile", flush=True)
    if "--forever" in args:
        print("ready", flush=True)
        while True:
            spprof_cli_hot(0.05)
    if "--raise" in args:
        raise ValueError("boom from the workload")
    if "--exit" in args:
        sys.exit(int(args[args.index("--exit") + 1]))


if __name__ == "__main__":
    main()
