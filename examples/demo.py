"""The demo: a small program with several threads and one obvious hot spot, profiled by spprof.

It writes a Speedscope file (open it at https://www.speedscope.app or with `npx speedscope`)
and prints where the time went.
"""
import hashlib
import json
import os
import sys
import threading
import time
from collections import Counter

import spprof


def parse_records(n):
    records = []
    for i in range(n):
        records.append(json.loads(json.dumps({"id": i, "name": f"user{i}", "tags": ["a", "b"]})))
    return records


def checksum(blob, rounds):
    digest = b""
    for _ in range(rounds):
        digest = hashlib.sha256(blob + digest).digest()
    return digest


def slow_score(values):
    # the hot spot: a quadratic loop
    score = 0
    for a in values:
        for b in values:
            score += (a * b) % 7
    return score


def web_worker(stop):
    while not stop.is_set():
        parse_records(2000)
        time.sleep(0.01)


def batch_worker():
    for _ in range(12):
        slow_score(list(range(1000)))


def io_worker(stop):
    while not stop.is_set():
        checksum(b"x" * 4096, 2000)
        time.sleep(0.02)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "out/demo.speedscope.json"
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    stop = threading.Event()
    threads = [threading.Thread(target=web_worker, args=(stop,), name="web"),
               threading.Thread(target=batch_worker, name="batch"),
               threading.Thread(target=io_worker, args=(stop,), name="io")]
    spprof.start(interval_ms=1, output_path=out)
    for t in threads:
        t.start()
    threads[1].join()
    stop.set()
    for t in threads:
        t.join()
    reader = spprof.stats().reader
    profile = spprof.stop()

    total = sum(s.weight_ns for s in profile.samples) or 1
    self_time = Counter()
    by_thread = Counter()
    for s in profile.samples:
        leaf = s.frames[-1]
        self_time[f"{leaf.function_name} ({os.path.basename(leaf.filename)}:{leaf.lineno})"] += s.weight_ns
        by_thread[s.thread_name] += s.weight_ns
    print(f"spprof demo: {len(profile.samples)} samples, {total / 1e9:.2f} s of CPU, "
          f"{profile.dropped_count} dropped, {profile.torn_count} torn walks, read with {reader}")
    print("\nCPU time by thread:")
    for name, w in by_thread.most_common():
        print(f"  {100 * w / total:5.1f} %  {name}")
    print("\nHottest lines (self time):")
    for name, w in self_time.most_common(8):
        print(f"  {100 * w / total:5.1f} %  {name}")
    print(f"\nWrote {out}: open it at https://www.speedscope.app (drag and drop the file)")


if __name__ == "__main__":
    main()
