"""An application that uses what profilers tend to disturb: a SIGALRM interval timer, a SIGCHLD
handler with child processes, thread and process pools, and lock-heavy threads. argv[1]:
"plain" or "profiled". Prints what it computed and what its handlers saw."""
import concurrent.futures as cf
import hashlib
import json
import multiprocessing
import queue
import signal
import subprocess
import sys
import threading
import time

profiled = sys.argv[1] == "profiled"
alarms = 0
sigchld = 0


def on_alarm(signum, frame):
    global alarms
    alarms += 1


def on_child(signum, frame):
    global sigchld
    sigchld += 1


def digest(n):
    return hashlib.sha256(str(sum(i * i for i in range(n))).encode()).hexdigest()[:16]


def locked_counter(threads, rounds):
    lock, cond = threading.Lock(), threading.Condition()
    counter = [0]
    q = queue.Queue()

    def producer():
        for i in range(rounds):
            q.put(i)
            with lock:
                counter[0] += 1

    def consumer(out):
        while True:
            item = q.get()
            if item is None:
                return
            with cond:
                out.append(item)

    got = []
    consumers = [threading.Thread(target=consumer, args=(got,)) for _ in range(threads)]
    producers = [threading.Thread(target=producer) for _ in range(threads)]
    for t in consumers + producers:
        t.start()
    for t in producers:
        t.join()
    for _ in consumers:
        q.put(None)
    for t in consumers:
        t.join()
    return counter[0], sum(got)


signal.signal(signal.SIGALRM, on_alarm)
signal.signal(signal.SIGCHLD, on_child)
if profiled:
    import spprof
    spprof.start(interval_ms=1)
t0 = time.monotonic()
signal.setitimer(signal.ITIMER_REAL, 0.01, 0.01)
result = {}
with cf.ThreadPoolExecutor(4) as pool:
    result["thread_pool"] = list(pool.map(digest, range(20000, 20040)))
# fork, the default before 3.14: 3.14's forkserver handshake dies under a 10 ms SIGALRM
# with or without spprof
with cf.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
    result["process_pool"] = list(pool.map(digest, range(30000, 30008)))
result["children"] = [subprocess.run([sys.executable, "-c", f"import sys; sys.exit({k})"]).returncode
                      for k in range(5)]
result["locks"] = locked_counter(8, 2000)
sleeps = 0
while time.monotonic() - t0 < 1.5:  # long enough for the timer's rate to mean something
    time.sleep(0.05)
    sleeps += 1
signal.setitimer(signal.ITIMER_REAL, 0, 0)
elapsed = time.monotonic() - t0
if profiled:
    profile = spprof.stop()
    result["samples"] = len(profile.samples)
print(json.dumps({"result": result, "alarm_rate": alarms / elapsed, "sigchld": sigchld,
                  "handlers_kept": signal.getsignal(signal.SIGALRM) is on_alarm
                  and signal.getsignal(signal.SIGCHLD) is on_child}))
