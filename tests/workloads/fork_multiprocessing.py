"""multiprocessing with the fork start method, from a profiled parent: each job profiles itself."""
import json
import multiprocessing

import spprof


def job(n):
    assert not spprof.is_active()
    spprof.start(interval_ms=1)
    total = 0
    for i in range(n):
        total += i * 3
    profile = spprof.stop()
    return len(profile.samples), any(s.frames[-1].function_name == "job" for s in profile.samples)


if __name__ == "__main__":
    spprof.start(interval_ms=1)
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.map(job, [2_000_000] * 4)
    parent = spprof.stop()
    print(json.dumps({"results": results, "parent_samples": len(parent.samples)}))
