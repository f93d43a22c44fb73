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

#include <cerrno>
#include <cstdlib>
#include <exception>
#include <utility>
#include <vector>
#include <memory>
#include <mutex>
#include <string>

#include "collector.h"
#include "kernel_clock.h"
#include "layout.h"
#include "metronome.h"
#include "native_ids.h"
#include "profile_data.h"
#include "py_glue.h"
#include "sampler.h"
#include "speedscope.h"

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

void start(double interval_ms, const std::string& mode, int max_depth, uint64_t memory_limit_bytes,
           py::object session, bool native_threads) {
    spprof_layout_calibrate_tasks();  // once; it runs Python code, so before the check below
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
    // 3.9/3.10 keep no native id in a thread state: a Python thread not yet (or no longer) known by
    // its id would be taken for a native one, so these threads are not accounted there.
    e->options.native_threads = native_threads && e->layout.has_native_thread_id != 0;
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
    sampler->set_collector(&e->collector->own_cpu());
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
    add("cut_after_tear", c.cut_after_tear.load());
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
    add("cpu_gil_waits", c.gil_waits.load());
    add("clock_reads_skipped", e.sampler->clocks().skipped());
    add("clock_full_reads", e.sampler->clocks().full_reads());
    add("thread_states_left_stale", c.states_stale.load());
    add("stacks_reused", c.stacks_reused.load());
    add("descriptors_lost", c.descriptors_lost.load());
    add("timer_restarts", c.timer_restarts.load());
    add("engine_errors", c.errors.load() + e.collector->errors());
    add("sampling_stopped", c.sampling_stopped.load() ? 1 : 0);
    add("late_at_edge", e.collector->late_at_edge());
    add("tables_started_afresh", e.collector->tables_started_afresh());
    add("tasks_named", e.sampler->tasks().named());
    add("task_names_rejected", e.sampler->tasks().rejected());
    add("task_parents_named", e.sampler->tasks().parents_named());
    add("waiting_tasks_sampled", e.sampler->waiting().sampled());
    add("waiting_tasks_left_out", e.sampler->waiting().left_out());
    add("waiting_tasks_rejected", e.sampler->waiting().rejected());
    add("native_thread_reads", e.sampler->natives().reads());
    add("native_thread_reads_skipped", e.sampler->natives().skipped());
    add("native_threads_seen", e.sampler->natives().seen_max());
    add("native_threads_lost", e.sampler->natives().lost());
    for (int r = 0; r < kTornReasons; ++r) add(kTornReasonNames[r], e.sampler->capture().torn(r));
    return d;
}

py::object stats() {
    if (!g_engine) return py::none();
    const Engine& e = *g_engine;
    py::dict d;
    for (const auto& kv : counters_of(e)) d[py::str(kv.first)] = kv.second;
    d["reader"] = std::string(e.sampler->reader_name());
    d["tasks_off"] = std::string(e.layout.tasks_off);  // why tasks are not named; "" when they are
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

}  // namespace

PYBIND11_MODULE(_native, m) {
    m.doc() = "spprof's native sampling engine";
    static bool at_fork = pthread_atfork(nullptr, nullptr, [] { after_fork_child(); }) == 0;
    (void)at_fork;
    spprof_layout_find_init_cleanup();  // here, not in start(): it runs Python code

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
        .def("stack_tasks", [](const ProfileData& d) {
            return py::bytes(reinterpret_cast<const char*>(d.stack_tasks.data()), d.stack_tasks.size() * sizeof(uint64_t));
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
        .def("total_weight_ns", [](const ProfileData& d) {
            uint64_t w = 0;
            for (const SampleEntry& s : d.samples) w += s.weight_ns;
            return w;
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
          py::arg("session") = py::none(), py::arg("native_threads") = true);
    m.def("stop", &stop);
    m.def("cut", &cut, py::arg("last") = false);
    m.def("ignore_thread", [](uint64_t ident) { return g_engine && g_engine->sampler->ignore_thread(ident); },
          py::arg("ident"));
    m.def("is_active", [] { return static_cast<bool>(g_engine); });
    m.def("session", [] { return g_engine ? py::reinterpret_borrow<py::object>(g_engine->session) : py::object(py::none()); });
    m.def("stats", &stats);
    m.def("after_fork_child", &after_fork_child);
    m.def("register_native_id", [](uint64_t ident, uint32_t tid) { native_ids().put(ident, tid); });
    // The same table for spprof._bench, whose engine is built apart from this one.
    m.attr("_native_ids") = py::capsule(&native_ids(), "spprof._native.native_ids");
}
