// spprof._bench: the engine's parts driven one at a time, for the benchmarks in bench/.
//
// Built only when SPPROF_BENCH=1 (setup.py), so the production extension carries none of it. It
// links its own copy of the engine from csrc/, and shares spprof._native's table of native thread
// ids (which spprof._threads fills on 3.9/3.10).
//
// Safety contract: every function here runs with the GIL held unless it says otherwise.
#include <pybind11/pybind11.h>

#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "collector.h"
#include "kernel_clock.h"
#include "layout.h"
#include "metronome.h"
#include "native_ids.h"
#include "py_glue.h"
#include "safe_read.h"
#include "sample_queue.h"
#include "sampler.h"

namespace py = pybind11;
using namespace spprof;

namespace {

constexpr size_t kQueueCells = 1 << 17;

py::module_ profiler_module() { return py::module_::import("spprof._native"); }

NativeIds& native_ids() {
    static NativeIds* ids = static_cast<NativeIds*>(
        PyCapsule_GetPointer(profiler_module().attr("_native_ids").ptr(), "spprof._native.native_ids"));
    if (ids == nullptr) throw py::error_already_set();
    return *ids;
}

// The sampler's tick and the collector's drain, driven on the calling thread and never while
// profiling. The calling thread's own stack is the one sampled.
class EngineBench {
public:
    EngineBench(const std::string& mode, int max_depth) : queue_(kQueueCells), sink_(static_cast<size_t>(max_depth)) {
        if (profiler_module().attr("is_active")().cast<bool>()) throw std::runtime_error("Profiler already running");
        if (max_depth < 1 || max_depth > 4096) throw std::invalid_argument("max_depth must be in [1, 4096]");
        char err[512] = {0};
        if (spprof_layout_init(&layout_, err, sizeof err) != 0) raise_os_error(err);
        SamplerOptions opts;
        opts.wall = mode == "wall";
        opts.max_depth = max_depth;
        collector_ = std::make_unique<Collector>(layout_, queue_, drain_, max_depth, 1ull << 32);
        sampler_ = std::make_unique<Sampler>(layout_, opts, queue_, drain_, native_ids());
        std::string error;
        if (!sampler_->open("", error) || !collector_->open("", error)) raise_os_error("spprof: " + error);
    }
    // One tick whose samples are thrown away; the depth of the calling thread's, or -1 without one.
    int tick() {
        sampler_->tick(monotonic_ns(), true);
        const uint32_t self = static_cast<uint32_t>(::gettid());
        int depth = -1;
        SampleCell header;
        while (queue_.pop(&header, 1) == 1) {
            if (header.header.native_tid == self) depth = header.header.depth;
            queue_.pop(sink_.data(), header.header.depth);
        }
        return depth;
    }
    // `ticks` ticks whose samples stay queued for drain(); the samples queued.
    uint64_t fill(int ticks) {
        const uint64_t before = sampler_->counters().collected.load();
        for (int i = 0; i < ticks; ++i) sampler_->tick(monotonic_ns(), true);
        return sampler_->counters().collected.load() - before;
    }
    // The builder's work on everything queued: interning stacks, naming frames. The samples taken.
    uint64_t drain() {
        const uint64_t before = collector_->samples();
        collector_->drain();
        return collector_->samples() - before;
    }
    uint64_t reads() const { return sampler_->reads(); }
    uint64_t torn() const { return sampler_->counters().torn.load(); }

private:
    spprof_layout layout_{};
    SampleQueue queue_;
    DrainSignal drain_;  // nobody waits on it: drain() is called directly
    std::unique_ptr<Collector> collector_;
    std::unique_ptr<Sampler> sampler_;
    std::vector<SampleCell> sink_;
};

// The CPU time a new thread spends running `body`, without the GIL, per one of its `wakeups`.
template <class Body>
double cpu_per_wake(int wakeups, Body body) {
    double per_wake = 0;
    without_gil([&] {
        std::thread t([&] {
            const uint64_t before = clock_ns(CLOCK_THREAD_CPUTIME_ID);
            body();
            per_wake = static_cast<double>(clock_ns(CLOCK_THREAD_CPUTIME_ID) - before) / wakeups;
        });
        t.join();
    });
    return per_wake;
}

// The CPU a thread spends per wake on the sampler's Metronome alone, or with `reads` copies of 256 bytes
// through `reader` after each wake: on a virtual machine the first copy after a sleep costs far
// more than the next ones, and this separates the two.
double measure_timer_wakeups(double interval_ms, int wakeups, const std::string& reader, int reads) {
    SafeReader r;
    std::string reader_error;
    if (reads > 0 && !r.open(reader, reader_error)) raise_os_error("spprof: " + reader_error);
    Metronome metronome(static_cast<uint64_t>(interval_ms * 1e6));  // set up outside the count
    std::string error;
    if (!metronome.prepare(error)) raise_os_error("spprof: " + error);
    return cpu_per_wake(wakeups, [&] {
        char src[256] = {1}, dst[256];
        std::atomic<uint64_t> missed{0};
        int k = 0;
        metronome.run([&] {
            for (int i = 0; i < reads; ++i) r.read(reinterpret_cast<uint64_t>(src), dst, sizeof dst);
            if (++k == wakeups) metronome.stop();
        }, missed);
    });
}

// The same for a thread that only sleeps to absolute deadlines with clock_nanosleep, no Asio, no
// epoll, no reads: what this machine charges for waking a thread, below which no sampler goes.
double measure_sleep_wakeups(double interval_ms, int wakeups) {
    return cpu_per_wake(wakeups, [&] {
        const uint64_t step = static_cast<uint64_t>(interval_ms * 1e6);
        uint64_t deadline = monotonic_ns();
        for (int k = 0; k < wakeups; ++k) {
            deadline += step;
            const struct timespec ts = {static_cast<time_t>(deadline / 1000000000ull),
                                        static_cast<long>(deadline % 1000000000ull)};
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {}
        }
    });
}

}  // namespace

PYBIND11_MODULE(_bench, m) {
    m.doc() = "spprof's engine driven piece by piece, for the benchmarks";
    spprof_layout_find_init_cleanup();
    py::class_<EngineBench>(m, "EngineBench")
        .def(py::init<const std::string&, int>(), py::arg("mode") = "cpu", py::arg("max_depth") = 128)
        .def("tick", &EngineBench::tick)
        .def("fill", &EngineBench::fill, py::arg("ticks"))
        .def("drain", &EngineBench::drain)
        .def_property_readonly("reads", &EngineBench::reads)
        .def_property_readonly("torn", &EngineBench::torn);
    m.def("measure_timer_wakeups", &measure_timer_wakeups, py::arg("interval_ms"), py::arg("wakeups"),
          py::arg("reader") = "", py::arg("reads") = 0);
    m.def("measure_sleep_wakeups", &measure_sleep_wakeups, py::arg("interval_ms"), py::arg("wakeups"));
}
