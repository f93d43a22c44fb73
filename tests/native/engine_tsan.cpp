// The sampling engine under ThreadSanitizer: Python threads run (and come and go) while the
// engine is built, run and torn down many times the way spprof._native's start()/stats()/stop()
// do it, with the counters read meanwhile and NativeIds written and read from other threads.
//
// Usage: engine_tsan [--rounds N] [--seed S]     (ci/native_checks.sh builds it with -fsanitize=thread)
// Exits 0 with a summary, or nonzero with a message (a failed check, or TSan's report).
#include "harness.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <chrono>
#include <memory>
#include <set>
#include <thread>

#include "collector.h"
#include "layout.h"
#include "native_ids.h"
#include "profile_data.h"
#include "sampler.h"

using namespace spprof;
using harness::fmt;

namespace {

const char* kWorkload = R"PY(
import sys, threading, time

stop = False

def leaf(n):
    s = 0
    for i in range(n):
        s += i * i
    return s

def spin_a():
    while not stop:
        leaf(3000)

def deep(n):
    if n == 0:
        while not stop:
            leaf(500)
        return
    deep(n - 1)

def gen_source():
    i = 0
    while True:
        leaf(200)
        yield i
        i += 1

def gen_worker():
    g = gen_source()
    while not stop:
        next(g)

def sleeper():
    while not stop:
        time.sleep(0.002)
        leaf(100)

def churn():
    # threads that start and end all the time: the thread-state list changes under the sampler
    while not stop:
        ts = [threading.Thread(target=leaf, args=(2000,)) for _ in range(3)]
        for t in ts: t.start()
        for t in ts: t.join()

workers = [threading.Thread(target=f, name=f.__name__, args=a) for f, a in
           ((spin_a, ()), (deep, (60,)), (gen_worker, ()), (sleeper, ()), (churn, ()))]
for t in workers:
    t.start()
while any(t.native_id is None for t in workers):
    time.sleep(0.001)
native_ids = [(t.ident, t.native_id) for t in workers] + [(threading.get_ident(), threading.get_native_id())]
)PY";

struct Engine {  // as module.cpp's
    std::unique_ptr<SampleQueue> queue;
    DrainSignal drain;
    std::unique_ptr<Collector> collector;
    std::unique_ptr<Sampler> sampler;
    SamplerOptions options;
};

uint64_t c_lost(const Engine& e) { return e.sampler->counters().descriptors_lost.load(); }
uint64_t c_restarts(const Engine& e) { return e.sampler->counters().timer_restarts.load(); }

// Closes every epoll, timerfd and eventfd of the process (here: only the sampler's timer has any),
// behind the engine's back as a program would, and leaves each number taken by /dev/null, as a
// program that closes descriptors and opens files would. Through raw system calls: TSan models a
// close racing with the descriptor's use as a data race, and that race is the attack being
// simulated. The numbers stay taken: a sampler thread abandoned asleep in the lost epoll has its
// number on record in TSan, which would take a later round's epoll given the same number for a
// race with that sleeping thread.
void close_anon_descriptors() {
    const int null_fd = static_cast<int>(::syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY | O_CLOEXEC));
    CHECK(null_fd >= 0, "cannot open /dev/null");
    for (int fd = 3; fd < 1024; ++fd) {
        char path[64], target[64];
        std::snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        const ssize_t n = ::readlink(path, target, sizeof target - 1);
        if (n <= 0) continue;
        target[n] = '\0';
        if (std::strncmp(target, "anon_inode:[eventpoll]", 22) == 0 || std::strncmp(target, "anon_inode:[timerfd]", 20) == 0 ||
            std::strncmp(target, "anon_inode:[eventfd]", 20) == 0)
            ::syscall(SYS_dup3, null_fd, fd, O_CLOEXEC);  // closes fd's file and puts /dev/null there
    }
    ::syscall(SYS_close, null_fd);
}

// What stats() reads, read here from another thread than the sampler's and the collector's.
uint64_t read_stats(const Engine& e) {
    const SamplerCounters& c = e.sampler->counters();
    uint64_t sum = c.collected.load() + c.dropped_full.load() + e.collector->dropped_memory() + c.torn.load() +
                   c.torn_lists.load() + c.retries.load() + c.missed_ticks.load() + c.ticks.load() +
                   c.threads_max.load() + c.unidentified.load() + e.collector->unverified() +
                   e.collector->bytes_held() + e.sampler->cpu_ns() + c.reads.load() + e.collector->samples();
    for (int r = 0; r < kTornReasons; ++r) sum += e.sampler->capture().torn(r);
    sum += e.sampler->reader_name()[0];
    return sum;
}

// One writer (in spprof, Python code holding the GIL) and several lock-free readers of NativeIds:
// a reader sees no tid, or one that was put for that very ident.
void native_ids_stress(int ms) {
    static NativeIds ids;  // too big for a thread's stack under TSan
    // More idents than slots, with tids of no thread: the writer evicts all the time
    std::atomic<bool> done{false};
    std::atomic<uint64_t> bad{0}, hits{0};
    auto tid_for = [](uint64_t ident, uint32_t gen) { return static_cast<uint32_t>(((ident * 2654435761u) & 0x3ff) << 20 | (gen & 0xfffff)); };
    std::thread writer([&] {
        uint32_t gen = 1;
        while (!done.load()) {
            for (uint64_t ident = 1; ident <= 40000 && !done.load(); ++ident) ids.put(ident * 0x1000 + 0x7f0000000000ull, tid_for(ident, gen));
            ++gen;
        }
    });
    std::vector<std::thread> readers;
    for (int r = 0; r < 2; ++r) {
        readers.emplace_back([&, r] {
            harness::Rng rng(77 + r);
            while (!done.load()) {
                uint64_t ident = 1 + rng.below(42000);
                uint32_t tid = ids.get(ident * 0x1000 + 0x7f0000000000ull);
                if (tid == 0) continue;
                hits.fetch_add(1);
                if ((tid >> 20) != ((ident * 2654435761u) & 0x3ff)) bad.fetch_add(1);
            }
        });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    done = true;
    writer.join();
    for (auto& t : readers) t.join();
    CHECK(bad.load() == 0, fmt("NativeIds::get returned another ident's tid %llu times", (unsigned long long)bad.load()));
    CHECK(hits.load() > 0, "NativeIds::get never found a tid that was put");
    std::printf("native ids: %llu lookups found a tid, all consistent\n", (unsigned long long)hits.load());
}

}  // namespace

int main(int argc, char** argv) {
    int rounds = 16;
    uint64_t seed = 1;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--rounds" && i + 1 < argc) rounds = std::atoi(argv[++i]);
        else if (a == "--seed" && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 0);
        else { std::fprintf(stderr, "usage: %s [--rounds N] [--seed S]\n", argv[0]); return 64; }
    }
    const uint64_t t0 = harness::now_ns();
    harness::start_python();
    harness::run_python(kWorkload);

    spprof_layout layout{};
    char err[512] = {0};
    CHECK(spprof_layout_init(&layout, err, sizeof err) == 0, err);

    static NativeIds ids;  // as module.cpp's native_ids(): what register_native_id() fills on 3.9/3.10
    std::vector<std::pair<uint64_t, uint32_t>> known;
    {
        PyObject* list = harness::main_global("native_ids");
        for (Py_ssize_t i = 0; i < PyList_Size(list); ++i) {
            PyObject* t = PyList_GetItem(list, i);
            known.emplace_back(PyLong_AsUnsignedLongLong(PyTuple_GetItem(t, 0)),
                               static_cast<uint32_t>(PyLong_AsUnsignedLong(PyTuple_GetItem(t, 1))));
            ids.put(known.back().first, known.back().second);
        }
        Py_DECREF(list);
    }

    PyThreadState* main_ts = PyEval_SaveThread();  // the workers run; the engine never takes the GIL
    harness::Rng rng(seed);
    uint64_t total_samples = 0, total_ticks = 0, total_torn = 0, collected_in_windows = 0;
    int remote_stops = 0;
    for (int round = 0; round < rounds; ++round) {
        Engine e;
        e.options.interval_ns = 1'000'000;
        e.options.wall = round % 2 == 1;
        e.options.max_depth = round % 4 == 2 ? 16 : 128;  // sometimes truncated stacks (deep() is 60 deep)
        const size_t cells = round % 5 == 3 ? 4096 : (1u << 17);  // a small queue fills: drops are counted
        e.queue = std::make_unique<SampleQueue>(cells);
        e.collector = std::make_unique<Collector>(layout, *e.queue, e.drain, e.options.max_depth, 64ull << 20);
        e.sampler = std::make_unique<Sampler>(layout, e.options, *e.queue, e.drain, ids);
        // The fault-proof readers in turn ("" picks process_vm_readv here). Not the pipe reader:
        // TSan's write() interceptor treats the kernel's copy of interpreter memory as a plain read
        // by the program and reports it against the interpreter's own writes (the racy copy is the
        // design); ci/sanitizers.sh leaves it out of the ASan run for the same reason.
        const char* const readers[] = {"", "proc_mem", ""};
        const std::string reader = readers[round % 3];
        std::string error;
        Sampler* sampler = e.sampler.get();
        e.collector->set_watch([sampler] { sampler->watch(); });
        CHECK(e.collector->start(reader, error), error);
        CHECK(e.sampler->start(reader, error), error);

        // Meanwhile "register_native_id" keeps writing (the real workers again, and idents of threads
        // that come and go), as Python code would while the sampler reads.
        std::atomic<bool> round_done{false};
        std::thread registrar([&] {
            uint64_t n = 0;
            while (!round_done.load()) {
                for (const auto& k : known) ids.put(k.first, k.second);
                ++n;
                ids.put(0x7e0000000000ull + (n % 512) * 0x1000, static_cast<uint32_t>(n));
                std::this_thread::sleep_for(std::chrono::microseconds(200));
            }
        });

        // Continuous profiling: windows cut from another thread while the collector drains, on
        // until after finish() began. Each window must be whole in itself; with the last profile
        // they hold every sample once.
        const bool cutting = round % 3 == 1;
        std::atomic<bool> cutter_done{false};
        uint64_t cut_samples = 0, cuts = 0;
        std::string cut_error;
        std::thread cutter;
        if (cutting) {
            cutter = std::thread([&, round] {
                harness::Rng crng(seed + 1000 + round);  // the main thread's own is not shared
                uint64_t edge_before = 0;
                while (!cutter_done.load()) {
                    uint64_t edge = harness::now_ns() - 2'000'000;
                    if (edge < edge_before) edge = edge_before;
                    std::unique_ptr<ProfileData> w = e.collector->cut(edge);
                    if (!w) break;  // finished
                    edge_before = edge;
                    ++cuts;
                    cut_samples += w->samples.size();
                    for (const SampleEntry& s : w->samples) {
                        if (s.stack >= w->stack_count() || s.thread >= w->threads.size()) cut_error = "a window's sample refers to nothing";
                    }
                    for (uint32_t f : w->stack_frames) if (f >= w->frames.size()) cut_error = "a window's stack refers to no frame";
                    if (w->stack_tasks.size() != w->stack_count()) cut_error = "a window's stacks and their tasks differ in number";
                    for (const FrameEntry& f : w->frames) if (f.symbol >= w->symbols.size()) cut_error = "a window's frame refers to no symbol";
                    std::this_thread::sleep_for(std::chrono::microseconds(1000 + crng.below(20000)));
                }
            });
        }

        const bool brief = round % 7 == 6;  // stopped almost at once: start/stop races
        bool ended = true;
        const uint64_t run_ns = brief ? rng.below(3) * 1'000'000 : (100 + rng.below(201)) * 1'000'000;
        const uint64_t until = harness::now_ns() + run_ns;
        uint64_t sink = 0;
        // Some rounds lose the timer's descriptors halfway, as a program that closes every
        // descriptor would make them: the collector's watch starts a fresh sampler thread.
        const bool lose = !brief && round % 6 == 5;
        bool lost = false;
        while (harness::now_ns() < until) {
            sink += read_stats(e);
            if (lose && !lost && harness::now_ns() > until - run_ns / 2) {
                close_anon_descriptors();
                lost = true;
            }
            std::this_thread::sleep_for(std::chrono::microseconds(500 + rng.below(3000)));
        }
        if (lost) std::this_thread::sleep_for(std::chrono::milliseconds(400));  // a watch or two
        // module.cpp's stop(): the sampler is stopped, then the collector finished, then stats.
        sink += read_stats(e);
        if (round % 4 == 0) {
            // stop() from another thread while this one still reads the counters
            ++remote_stops;
            std::atomic<bool> stopped{false};
            std::thread stopper([&] { ended = e.sampler->stop(); stopped = true; });
            while (!stopped.load()) { sink += read_stats(e); std::this_thread::yield(); }
            stopper.join();
        } else {
            ended = e.sampler->stop();
        }
        if (lost) {
            CHECK(c_lost(e) == 1 && c_restarts(e) == 1,
                  fmt("round %d: descriptors lost %llu times, %llu timers restarted", round,
                      (unsigned long long)c_lost(e), (unsigned long long)c_restarts(e)));
        }
        round_done = true;
        registrar.join();
        const SamplerCounters& c = e.sampler->counters();
        const uint64_t collected = c.collected.load();
        std::unique_ptr<ProfileData> d = e.collector->finish();
        cutter_done = true;
        if (cutter.joinable()) cutter.join();
        CHECK(cut_error.empty(), fmt("round %d: %s", round, cut_error.c_str()));
        if (cutting) {
            // The windows and what was left at finish() hold every sample once.
            CHECK(cut_samples + d->samples.size() + e.collector->dropped_memory() == collected,
                  fmt("round %d: %llu samples in %llu windows + %zu at the end + %llu dropped, but the sampler pushed %llu",
                      round, (unsigned long long)cut_samples, (unsigned long long)cuts, d->samples.size(),
                      (unsigned long long)e.collector->dropped_memory(), (unsigned long long)collected));
            collected_in_windows += cut_samples;
        }
        (void)sink;

        // The profile is whole: every sample pushed arrived (none dropped for memory at this
        // bound), and every id in it refers to something.
        CHECK(cutting || d->samples.size() + e.collector->dropped_memory() == collected,
              fmt("round %d: %zu samples + %llu dropped for memory, but the sampler pushed %llu", round,
                  d->samples.size(), (unsigned long long)e.collector->dropped_memory(), (unsigned long long)collected));
        for (const SampleEntry& s : d->samples) {
            CHECK(s.stack < d->stack_count() && s.thread < d->threads.size(), fmt("round %d: a sample refers to nothing", round));
        }
        for (uint32_t f : d->stack_frames) CHECK(f < d->frames.size(), fmt("round %d: a stack refers to no frame", round));
        CHECK(d->stack_tasks.size() == d->stack_count(), fmt("round %d: stacks and their tasks differ in number", round));
        for (const FrameEntry& f : d->frames) CHECK(f.symbol < d->symbols.size(), fmt("round %d: a frame refers to no symbol", round));
        std::set<std::string> names;
        for (const Symbol& s : d->symbols) names.insert(s.name);
        if (!brief) {
            CHECK(collected > 0 && c.ticks.load() > 0,
                  fmt("round %d (%s, %llu ms): no samples arrived (ticks %llu, torn %llu, torn lists %llu, unidentified %llu)",
                      round, e.options.wall ? "wall" : "cpu", (unsigned long long)(run_ns / 1000000),
                      (unsigned long long)c.ticks.load(), (unsigned long long)c.torn.load(),
                      (unsigned long long)c.torn_lists.load(), (unsigned long long)c.unidentified.load()));
            CHECK(names.count("leaf") && names.count("spin_a"),
                  fmt("round %d: the workers' functions are missing from the %zu symbols", round, d->symbols.size()));
        }
        std::printf("round %2d: %-4s %-16s %3llu ms, %5llu ticks, %6llu samples, %4llu torn, %3zu symbols, stopped from %s\n",
                    round, e.options.wall ? "wall" : "cpu", e.sampler->reader_name(), (unsigned long long)(run_ns / 1000000),
                    (unsigned long long)c.ticks.load(), (unsigned long long)collected, (unsigned long long)c.torn.load(),
                    d->symbols.size(), round % 4 == 0 ? "another thread" : "the main thread");
        std::fflush(stdout);
        total_samples += collected;
        total_ticks += c.ticks.load();
        total_torn += c.torn.load();
        // a sampler thread asleep on the lost epoll may still touch its sampler and queue
        if (!ended) {
            (void)e.sampler.release();
            (void)e.queue.release();
        }
    }

    native_ids_stress(300);

    PyEval_RestoreThread(main_ts);
    harness::run_python("stop = True\nfor t in workers: t.join()\n");
    std::printf("engine under TSan: %d rounds (%d stopped from another thread), %llu ticks, %llu samples "
                "(%llu in windows cut meanwhile), %llu torn walks, %.1f s\n",
                rounds, remote_stops, (unsigned long long)total_ticks, (unsigned long long)total_samples,
                (unsigned long long)collected_in_windows, (unsigned long long)total_torn, (harness::now_ns() - t0) / 1e9);
    return 0;
}
