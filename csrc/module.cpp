// spprof._native: the pybind11 face of the engine.
//
// Safety contract: every function here runs with the GIL held (pybind11's default) unless it
// says otherwise; the GIL serialises start() and stop(), so one engine exists at a time.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include <cerrno>
#include <cstdlib>
#include <exception>
#include <utility>
#include <vector>
#include <memory>
#include <mutex>
#include <string>

#include "collector.h"
#include "layout.h"
#include "metronome.h"
#include "profile_data.h"
#include "sampler.h"
#include "speedscope.h"
#include "threads.h"

namespace py = pybind11;
using namespace spprof;

namespace {

constexpr size_t kQueueCells = 1 << 17;  // 4 MiB: a few hundred ms of samples at 1 ms

// The queue counts against memory_limit_mb: at most a quarter of it, so a small bound stays a bound.
size_t queue_cells_for(uint64_t memory_limit_bytes) {
    size_t cells = static_cast<size_t>(memory_limit_bytes / 4 / sizeof(SampleCell));
    return std::max<size_t>(4096, std::min(kQueueCells, cells));
}

int64_t unix_ns() { return static_cast<int64_t>(clock_ns(CLOCK_REALTIME)); }

NativeIds& native_ids() {
    static NativeIds* ids = new NativeIds();  // never freed: the sampler of a late stop may read it
    return *ids;
}

struct Engine {
    spprof_layout layout{};
    SamplerOptions options;
    std::unique_ptr<SampleQueue> queue;
    DrainSignal drain;
    std::unique_ptr<Collector> collector;
    std::unique_ptr<Sampler> sampler;
    uint64_t start_ns = 0;
    int64_t start_unix_ns = 0;
    uint64_t process_cpu_start_ns = 0;
    size_t queue_cells = 0;
    // Continuous profiling: the edge of the last window cut, and one cut (or stop) at a time.
    std::mutex cut_mu;
    uint64_t last_edge_ns = 0;
    int64_t last_edge_unix_ns = 0;
    // The Python side's record, kept here so that it changes with the engine. A strong reference
    // that only stop() gives back: an engine destroyed at process exit never touches Python.
    PyObject* session = nullptr;
};

// Shared: a cut runs without the GIL and keeps the engine alive while a stop() on another thread
// takes it away.
std::shared_ptr<Engine> g_engine;

uint64_t process_cpu_ns() { return clock_ns(CLOCK_PROCESS_CPUTIME_ID); }

[[noreturn]] void raise_os_error(const std::string& msg) {
    PyErr_SetString(PyExc_OSError, msg.c_str());
    throw py::error_already_set();
}

// Native strings hold lone surrogates as "surrogatepass" writes them (csrc/pyobjects.cpp): a
// name Python decoded with os.fsdecode ('caf\udce9') goes both ways unchanged.
py::str text(const std::string& s) {
    PyObject* o = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "surrogatepass");
    if (o == nullptr) throw py::error_already_set();
    return py::reinterpret_steal<py::str>(o);
}

std::string utf8(const py::str& s) {
    PyObject* b = PyUnicode_AsEncodedString(s.ptr(), "utf-8", "surrogatepass");
    if (b == nullptr) throw py::error_already_set();
    std::string out(PyBytes_AS_STRING(b), static_cast<size_t>(PyBytes_GET_SIZE(b)));
    Py_DECREF(b);
    return out;
}

// Runs `body` without the GIL. The GIL is taken back in this ordinary frame, never in a
// destructor: at interpreter exit CPython ends a daemon thread that takes the GIL back with
// pthread_exit, whose forced unwind calls std::terminate when it meets a noexcept frame (a scoped
// guard's destructor is one). Nothing holding a Python object may live in the frames it unwinds.
template <class Body>
void without_gil(Body&& body) {
    PyThreadState* ts = PyEval_SaveThread();
    std::exception_ptr failure;
    try {
        body();
    } catch (...) {
        failure = std::current_exception();
    }
    PyEval_RestoreThread(ts);
    if (failure) std::rethrow_exception(failure);
}

void start(double interval_ms, const std::string& mode, int max_depth, uint64_t memory_limit_bytes,
           py::object session) {
    if (g_engine) throw std::runtime_error("Profiler already running");
    // The engine reads the main interpreter's thread list: from a sub-interpreter it would
    // silently profile another interpreter than the caller's.
    if (PyInterpreterState_Get() != PyInterpreterState_Main())
        throw std::runtime_error("spprof profiles the main interpreter only: call start() there, not in a sub-interpreter");
    auto e = std::make_unique<Engine>();
    char err[512] = {0};
    if (spprof_layout_init(&e->layout, err, sizeof err) != 0) raise_os_error(err);
    e->options.interval_ns = static_cast<uint64_t>(interval_ms * 1e6);
    e->options.wall = mode == "wall";
    e->options.max_depth = max_depth;
    const char* forced = std::getenv("SPPROF_READER");
    std::string reader = forced ? forced : "";
    std::string error;
    e->queue_cells = queue_cells_for(memory_limit_bytes);
    e->queue = std::make_unique<SampleQueue>(e->queue_cells);
    const uint64_t queue_bytes = e->queue_cells * sizeof(SampleCell);
    e->collector = std::make_unique<Collector>(e->layout, *e->queue, e->drain, max_depth,
                                               memory_limit_bytes > queue_bytes ? memory_limit_bytes - queue_bytes : 0);
    e->sampler = std::make_unique<Sampler>(e->layout, e->options, *e->queue, e->drain, native_ids());
    Sampler* sampler = e->sampler.get();
    e->collector->set_watch([sampler] { sampler->watch(); });
    if (!e->collector->start(reader, error)) raise_os_error("spprof: " + error);
    e->start_ns = monotonic_ns();
    e->start_unix_ns = unix_ns();
    e->process_cpu_start_ns = process_cpu_ns();
    e->last_edge_ns = e->start_ns;
    e->last_edge_unix_ns = e->start_unix_ns;
    if (!e->sampler->start(reader, error)) {
        e->collector->finish();
        raise_os_error("spprof: " + error);
    }
    e->session = session.release().ptr();
    g_engine = std::move(e);
}

using Counters = std::vector<std::pair<std::string, uint64_t>>;

Counters counters_of(const Engine& e) {
    const SamplerCounters& c = e.sampler->counters();
    Counters d;
    auto add = [&d](const char* k, uint64_t v) { d.emplace_back(k, v); };
    add("collected_samples", c.collected.load());
    add("dropped_samples", c.dropped_full.load() + e.collector->dropped_memory());
    add("dropped_queue_full", c.dropped_full.load());
    add("dropped_memory_limit", e.collector->dropped_memory());
    add("torn_walks", c.torn.load() + c.torn_lists.load());
    add("walk_retries", c.retries.load());
    add("torn_charged", c.torn_charged.load());
    add("missed_ticks", c.missed_ticks.load());
    add("ticks", c.ticks.load());
    add("threads_seen", c.threads_max.load());
    add("thread_lists_cut", c.lists_cut.load());
    add("unidentified_threads", c.unidentified.load());
    add("native_ids_not_stored", native_ids().not_stored());
    add("unverified_frames", e.collector->unverified());
    add("bytes_held", e.collector->bytes_held() + e.queue_cells * sizeof(SampleCell));
    add("sampler_cpu_ns", e.sampler->cpu_ns());
    add("collector_cpu_ns", e.collector->cpu_ns());
    add("process_cpu_ns", process_cpu_ns() - e.process_cpu_start_ns);
    add("duration_ns", monotonic_ns() - e.start_ns);
    add("reads", c.reads.load());
    add("cpu_before_block", c.before_block.load());
    add("clock_reads_skipped", e.sampler->clocks().skipped());
    add("clock_full_reads", e.sampler->clocks().full_reads());
    add("thread_states_left_stale", c.states_stale.load());
    add("descriptors_lost", c.descriptors_lost.load());
    add("timer_restarts", c.timer_restarts.load());
    add("engine_errors", c.errors.load() + e.collector->errors());
    add("sampling_stopped", c.sampling_stopped.load() ? 1 : 0);
    add("late_at_edge", e.collector->late_at_edge());
    add("tables_started_afresh", e.collector->tables_started_afresh());
    for (int r = 0; r < kTornReasons; ++r) add(kTornReasonNames[r], e.sampler->capture().torn(r));
    return d;
}

py::object stats() {
    if (!g_engine) return py::none();
    const Engine& e = *g_engine;
    py::dict d;
    for (const auto& kv : counters_of(e)) d[py::str(kv.first)] = kv.second;
    d["reader"] = std::string(e.sampler->reader_name());
    return d;
}

// The profile and the session given to start(), together: no Python code runs between the
// engine's end and the hand-over of its record.
py::tuple stop() {
    if (!g_engine) throw std::runtime_error("Profiler not running");
    std::shared_ptr<Engine> e = std::move(g_engine);
    py::object session = py::reinterpret_steal<py::object>(std::exchange(e->session, nullptr));
    std::unique_ptr<ProfileData> d;
    // The native threads never take the GIL; other Python threads run meanwhile.
    without_gil([&] {
        bool ended;
        {
            std::lock_guard<std::mutex> lock(e->cut_mu);  // a final cut may be stopping the sampler too
            ended = e->sampler->stop();
        }
        const uint64_t end_ns = monotonic_ns();
        d = e->collector->finish();
        d->interval_ns = e->options.interval_ns;
        d->wall = e->options.wall;
        d->start_ns = e->start_ns;
        d->end_ns = end_ns;
        d->start_unix_ns = e->start_unix_ns;
        d->end_unix_ns = unix_ns();
        d->counters = counters_of(*e);  // after the sampler's end and the last drain: nothing missed
        // A sampler thread asleep on lost descriptors may still wake: it keeps its engine for good.
        if (!ended) new std::shared_ptr<Engine>(e);
    });
    return py::make_tuple(std::move(d), session);
}

// In the child of a fork() the engine's threads do not exist and its locks may be held for ever:
// it is abandoned, never destroyed (destroying would join threads and take those locks), and
// its descriptors closed. Its pages stay shared with the parent until written, so leaking them
// costs the child nothing. A pthread_atfork handler, so that forks made outside Python's
// os.fork() (an extension, a C library) are covered too; Python's own hook then finds nothing.
void after_fork_child() {
    if (!g_engine) return;
    Engine* e = (new std::shared_ptr<Engine>(std::move(g_engine)))->get();  // never freed
    e->sampler->close_after_fork();
    e->collector->close_reader_after_fork();
}

// A tick still pushing its samples at a cut (it takes microseconds, rarely more) is left whole
// for the next window: the edge is this much before the cut.
constexpr uint64_t kEdgeMarginNs = 5'000'000;

// Continuous profiling: the samples since the last cut, as a window of their own, while the
// sampler runs on; `last` stops the sampler first, so that the window ends with its last tick.
std::unique_ptr<ProfileData> cut(bool last) {
    if (!g_engine) throw std::runtime_error("Profiler not running");
    std::shared_ptr<Engine> e = g_engine;
    std::unique_ptr<ProfileData> d;
    without_gil([&] {  // draining takes milliseconds; the application runs on
        std::lock_guard<std::mutex> lock(e->cut_mu);
        if (last) e->sampler->stop();
        const uint64_t now = monotonic_ns();
        const int64_t now_unix = unix_ns();
        uint64_t edge = last ? now : now - std::min(now - e->last_edge_ns, kEdgeMarginNs);
        d = e->collector->cut(edge);
        if (d) {
            d->interval_ns = e->options.interval_ns;
            d->wall = e->options.wall;
            d->start_ns = e->last_edge_ns;
            d->end_ns = edge;
            d->start_unix_ns = e->last_edge_unix_ns;
            // Edges follow the monotonic clock, so that windows chain to the nanosecond; only a step
            // of the system clock (over a second) moves them to the wall clock again.
            const int64_t wall_edge = now_unix - static_cast<int64_t>(now - edge);
            const int64_t chained = e->last_edge_unix_ns + static_cast<int64_t>(edge - e->last_edge_ns);
            d->end_unix_ns = std::llabs(chained - wall_edge) > 1'000'000'000 ? std::max(e->last_edge_unix_ns, wall_edge) : chained;
            e->last_edge_ns = edge;
            e->last_edge_unix_ns = d->end_unix_ns;
        }
    });
    if (!d) throw std::runtime_error("Profiler not running");  // stopped meanwhile
    return d;
}

py::tuple sample_columns(const ProfileData& d) {
    size_t n = d.samples.size();
    std::string t(n * 8, '\0'), w(n * 8, '\0'), th(n * 4, '\0'), st(n * 4, '\0');
    for (size_t i = 0; i < n; ++i) {
        const SampleEntry& s = d.samples[i];
        std::memcpy(&t[i * 8], &s.t_ns, 8);
        std::memcpy(&w[i * 8], &s.weight_ns, 8);
        std::memcpy(&th[i * 4], &s.thread, 4);
        std::memcpy(&st[i * 4], &s.stack, 4);
    }
    return py::make_tuple(py::bytes(t), py::bytes(w), py::bytes(th), py::bytes(st));
}

// The sampler's tick and the collector's drain, driven on the calling thread for the
// micro-benchmarks and never while profiling. The calling thread's own stack is the one sampled.
class EngineBench {
public:
    EngineBench(const std::string& mode, int max_depth) : queue_(kQueueCells), sink_(static_cast<size_t>(max_depth)) {
        if (g_engine) throw std::runtime_error("Profiler already running");
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

PYBIND11_MODULE(_native, m) {
    m.doc() = "spprof's native sampling engine";
    static bool at_fork = pthread_atfork(nullptr, nullptr, [] { after_fork_child(); }) == 0;
    (void)at_fork;

    py::class_<ProfileData>(m, "ProfileData")
        .def_readonly("interval_ns", &ProfileData::interval_ns)
        .def_readonly("wall", &ProfileData::wall)
        .def_readonly("start_ns", &ProfileData::start_ns)
        .def_readonly("end_ns", &ProfileData::end_ns)
        .def_readonly("start_unix_ns", &ProfileData::start_unix_ns)
        .def_readonly("end_unix_ns", &ProfileData::end_unix_ns)
        .def("__len__", [](const ProfileData& d) { return d.samples.size(); })
        .def("symbols", [](const ProfileData& d) {
            py::list out;
            for (const Symbol& s : d.symbols) out.append(py::make_tuple(text(s.name), text(s.filename), s.firstlineno));
            return out;
        })
        .def("frames", [](const ProfileData& d) {
            py::list out;
            for (const FrameEntry& f : d.frames) out.append(py::make_tuple(f.symbol, f.line));
            return out;
        })
        .def("stacks", [](const ProfileData& d) {
            py::list out;
            for (size_t i = 0; i < d.stack_count(); ++i) {
                py::tuple t(d.stack_offsets[i + 1] - d.stack_offsets[i]);
                for (uint32_t k = d.stack_offsets[i], j = 0; k < d.stack_offsets[i + 1]; ++k, ++j) t[j] = d.stack_frames[k];
                out.append(t);
            }
            return out;
        })
        .def("threads", [](const ProfileData& d) {
            py::list out;
            for (const ThreadEntry& t : d.threads) out.append(py::make_tuple(t.ident, t.native_tid, text(t.name)));
            return out;
        })
        .def("set_thread_name", [](ProfileData& d, size_t i, const py::str& name) {
            if (i >= d.threads.size()) throw py::index_error("thread index out of range");
            d.threads[i].name = utf8(name);
        })
        .def("counters", [](const ProfileData& d) {
            py::dict out;
            for (const auto& kv : d.counters) out[py::str(kv.first)] = kv.second;
            return out;
        })
        .def("sample_columns", &sample_columns)
        .def("trim", &ProfileData::trim, py::arg("root_symbols"), py::arg("threads"))
        .def("write_speedscope", [](const ProfileData& d, const py::bytes& path, const py::str& name,
                                    const py::str& exporter, const py::list& thread_labels) {
            const std::string where = path, title = utf8(name), by = utf8(exporter);
            if (thread_labels.size() != d.threads.size()) throw py::value_error("one thread label per thread is needed");
            std::vector<std::string> labels;
            for (const py::handle& label : thread_labels) {
                if (!py::isinstance<py::str>(label)) throw py::type_error("thread labels must be str");
                labels.push_back(utf8(py::reinterpret_borrow<py::str>(label)));
            }
            int error = 0;
            bool ok = false;
            without_gil([&] { ok = write_speedscope(d, where, title, by, labels, error); });
            if (!ok) {  // OSError(errno, strerror, filename): FileNotFoundError and the like, as open() raises
                errno = error;
                PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, py::reinterpret_steal<py::object>(
                    PyUnicode_DecodeFSDefaultAndSize(where.data(), static_cast<Py_ssize_t>(where.size()))).ptr());
                throw py::error_already_set();
            }
        }, py::arg("path"), py::arg("name"), py::arg("exporter"), py::arg("thread_labels"));

    m.def("start", &start, py::arg("interval_ms"), py::arg("mode"), py::arg("max_depth"), py::arg("memory_limit_bytes"),
          py::arg("session") = py::none());
    m.def("stop", &stop);
    m.def("cut", &cut, py::arg("last") = false);
    m.def("is_active", [] { return static_cast<bool>(g_engine); });
    m.def("session", [] { return g_engine ? py::reinterpret_borrow<py::object>(g_engine->session) : py::object(py::none()); });
    m.def("stats", &stats);
    m.def("after_fork_child", &after_fork_child);
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
    m.def("register_native_id", [](uint64_t ident, uint32_t tid) { native_ids().put(ident, tid); });
}
