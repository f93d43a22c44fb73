import spprof
import threading

def worker(n):
    total = 0
    for i in range(n):
        total += i ** 2
    return total

spprof.start(interval_ms=5)

# Create and run threads
threads = [threading.Thread(target=worker, args=(1_000_000,)) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()

profile = spprof.stop()
print(f"Collected {len(profile.samples)} samples from {len(set(s.thread_id for s in profile.samples))} threads")
profile.save("threaded_profile.json")
