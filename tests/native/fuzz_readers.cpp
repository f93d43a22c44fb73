// Seeded, bounded fuzzing of every engine function that reads interpreter memory or bytes copied
// from it: the line-table decoders, decode_str, the frame-chain walker, the thread-list reader,
// the symbol reader (read_str, read_bytes, SymbolTable), the running asyncio task's reader, the
// reader of 3.9's to 3.13's set of scheduled tasks, the reader of the tasks suspended in a real
// event loop (WaitingTasks), and the reader's own batching. Built with ASan and UBSan by
// ci/native_checks.sh: an out-of-bounds read, a wild pointer or undefined behaviour ends the run.
//
// Inputs are random bytes, pointer-like words (aligned addresses in the fake image, the real
// PyCode_Type, real code objects and frames, unmapped and wrapping addresses), and mutated copies
// of real objects: line tables and strings of real code, and the thread states and frame chains
// of real Python threads blocked in known functions, copied into a buffer with their pointers
// relocated into it. Unmutated copies double as oracles (the walker must find the real stack, the
// decoders CPython's own answers). This file takes the inputs and runs the targets; each target
// is a file of tests/native/fuzz_readers/, and fuzz.h there is what they share.
//
// Usage: fuzz_readers [--seconds N | --long] [--seed S] [--iterations N] [--only TARGET] [--reader R]
//   --seconds  total time, split among the targets (default 10; --long is 600)
//   --iterations  a per-target cap, for a run that is the same every time
//   --reader   vm_readv (the default here) or proc_mem (which reads even PROT_NONE pages); not
//              pipe: ASan's write() interceptor checks the copied range as if the program read it
// A failure prints the target, the iteration and the seed; the same seed and --iterations replay it.
#include "fuzz_readers/fuzz.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "bytes.h"
#include "native_ids.h"
#include "thread_list.h"
#include "layout_check.h"

using namespace spprof;
using harness::fmt;
using namespace fuzz;

namespace {

const char* kSetup = R"PY(
import sys, threading, time, types, importlib

# --- code objects: the standard library's and some with unusual line tables -----------------
synthetic = [
    "def gaps():\n    a = 1\n" + "\n" * 300 + "    b = 2\n" + "\n" * 70000 + "    return a + b\n",
    "def big():\n" + "".join("    x%d = %d\n" % (i, i) for i in range(3000)) + "    return 0\n",
    "def wide():\n    return " + " + ".join("v%d" % i for i in range(150)) + "\n",
    "def back(xs):\n    return [\n        x\n        for x in xs\n        if x\n    ]\n",
    "def loop(n):\n    t = 0\n    for i in range(n):\n        t += i\n    while t > 0:\n        t -= 7\n    return t\n",
    "def tr():\n    try:\n        1/0\n    except ZeroDivisionError as e:\n        pass\n    finally:\n        x = 2\n    with open('/dev/null') as f:\n        pass\n",
    "g = (i for i in range(3))\nf = lambda x: (\n  x +\n  1)\nasync def co():\n    await co()\nclass C:\n    def m(self):\n        return 1\n",
    "def calls():\n    return f(\n        1,\n\n\n        2)(\n    3)\n",
    "\n" * 40000 + "def late():\n    return 1\n",
]
roots = [compile(src, "<synthetic-%d>" % i, "exec") for i, src in enumerate(synthetic)]
for name in ("json.decoder", "argparse", "typing", "dataclasses", "ast", "threading", "inspect", "textwrap"):
    try:
        m = importlib.import_module(name)
        with open(m.__file__, encoding="utf-8") as f:
            roots.append(compile(f.read(), m.__file__, "exec"))
    except Exception:
        pass
codes = []
def walk(c):
    codes.append(c)
    for k in c.co_consts:
        if isinstance(k, types.CodeType):
            walk(k)
for r in roots:
    walk(r)
lnotab = sys.version_info < (3, 10)
tables = [(c, c.co_lnotab if lnotab else c.co_linetable, len(c.co_code)) for c in codes]
code_names = [getattr(c, "co_qualname", c.co_name) for c in codes]

# --- strings of every kind --------------------------------------------------------------------
class S(str):
    __slots__ = ()
strs = ["", "a", "hello world", "caf\xe9", "\xff" * 10, "\u65e5\u672c\u8a9e", "\U0001f600 emoji",
        "\ud800 lone", "x" * 4096, "y" * 4097, "\xe9" * 5000, "\u540d" * 4096, sys.intern("interned_name"),
        S("subclass"), S("non-compact \xe9 \u540d"), "\U0010ffff", str(12345) * 7, "\x00nul\x00",
        "\udfff\U0001f600\u0100"]
strs += [c.co_name for c in codes[:300]] + [c.co_filename for c in codes[:50]]
expected = [s.encode("utf-8", "surrogatepass") for s in strs]  # lone surrogates kept, as Python decodes them back
byteses = [b"", b"x", bytes(range(256)), b"\x80" * 3000] + [t[1] for t in tables[:200]]

# --- threads blocked in known functions: live thread states and frame chains to copy ---------
release = threading.Event()
arrived = []
def blocked(tag):
    arrived.append(tag)
    release.wait()
def chain(n, tag):
    if n == 0:
        return blocked(tag)
    return chain(n - 1, tag)
def in_generator(tag):
    def g():
        yield chain(4, tag)
    return list(g())
class Holder:
    def method(self, tag):
        return chain(2, tag)
blockers = [threading.Thread(target=chain, args=(12, "chain")),
            threading.Thread(target=in_generator, args=("gen",)),
            threading.Thread(target=chain, args=(400, "deep")),
            threading.Thread(target=Holder().method, args=("method",))]
for t in blockers:
    t.start()
while len(arrived) < len(blockers):
    time.sleep(0.001)
time.sleep(0.2)  # each has reached release.wait()
blocker_idents = [t.ident for t in blockers]
)PY";

std::vector<uint8_t> copy_object(PyObject* o, size_t len) {
    std::vector<uint8_t> b(len);
    CHECK(R.read(reinterpret_cast<uint64_t>(o), b.data(), len), "cannot copy a live object");
    return b;
}

void collect_inputs() {
    // code objects and their line tables
    PyObject* tables = harness::main_global("tables");
    for (Py_ssize_t i = 0; i < PyList_Size(tables); ++i) {
        PyObject* t = PyList_GetItem(tables, i);
        PyObject* code = PyTuple_GetItem(t, 0);
        PyObject* tab = PyTuple_GetItem(t, 1);
        RealTable rt;
        rt.code = code;
        rt.bytes.assign(PyBytes_AsString(tab), PyBytes_AsString(tab) + PyBytes_Size(tab));
        rt.firstlineno = reinterpret_cast<PyCodeObject*>(code)->co_firstlineno;
        rt.code_len = static_cast<int>(PyLong_AsLong(PyTuple_GetItem(t, 2)));
        g_tables.push_back(std::move(rt));
        g_codes.push_back(reinterpret_cast<uint64_t>(code));
    }
    Py_DECREF(tables);  // __main__ keeps them alive
    // strings
    PyObject* strs = harness::main_global("strs");
    PyObject* expected = harness::main_global("expected");
    int noncompact = 0;
    for (Py_ssize_t i = 0; i < PyList_Size(strs); ++i) {
        PyObject* s = PyList_GetItem(strs, i);
        RealStr rs;
        rs.obj = s;
        rs.is_str = PyUnicode_CheckExact(s);
        rs.compact = PyUnicode_IS_COMPACT(s);
        size_t len;
        if (rs.compact) {
            size_t data = PyUnicode_IS_ASCII(s) ? L.str_ascii_data : L.str_compact_data;
            len = data + static_cast<size_t>(PyUnicode_GET_LENGTH(s) + 1) * PyUnicode_KIND(s);
        } else {
            len = static_cast<size_t>(Py_TYPE(s)->tp_basicsize);
            ++noncompact;
        }
        // read_str always copies str_compact_data bytes first (a short ASCII str is smaller: what
        // follows it in memory comes along), and decode_str wants at least that many.
        len = std::max<size_t>(len, L.str_compact_data);
        rs.bytes = copy_object(s, len);
        PyObject* e = PyList_GetItem(expected, i);
        rs.expect.assign(PyBytes_AsString(e), static_cast<size_t>(PyBytes_Size(e)));
        g_strs.push_back(std::move(rs));
        g_str_addrs.push_back(reinterpret_cast<uint64_t>(s));
    }
    CHECK(noncompact > 0, "no non-compact str to fuzz decode_str with");
    Py_DECREF(strs);
    Py_DECREF(expected);
    PyObject* byteses = harness::main_global("byteses");
    for (Py_ssize_t i = 0; i < PyList_Size(byteses); ++i) {
        PyObject* b = PyList_GetItem(byteses, i);
        g_bytes_objs.push_back(copy_object(b, L.bytes_sval + static_cast<size_t>(PyBytes_Size(b)) + 1));
        g_bytes_addrs.push_back(reinterpret_cast<uint64_t>(b));
    }
    Py_DECREF(byteses);
    // the blocked threads, through the engine's own list reader
    PyObject* idents = harness::main_global("blocker_idents");
    static NativeIds ids;
    ThreadList tl(L, R, ids, 64, 64);
    CHECK(tl.enumerate(), "cannot enumerate the real thread states");
    for (Py_ssize_t i = 0; i < PyList_Size(idents); ++i) {
        uint64_t ident = PyLong_AsUnsignedLongLong(PyList_GetItem(idents, i));
        for (size_t j = 0; j < tl.size(); ++j)
            if (tl[j].ident == ident) g_threads.push_back({tl[j].tstate, ident});
    }
    Py_DECREF(idents);
    CHECK(g_threads.size() == 4, fmt("found %zu of the 4 blocked threads", g_threads.size()));
    for (const RealThread& t : g_threads) {
        std::vector<uint8_t> ts(L.ts_size);
        CHECK(R.read(t.tstate, ts.data(), ts.size()), "cannot read a thread state");
        for (uint64_t f : real_chain(ts.data())) g_real_frames.push_back(f);
    }
    // addresses that cannot be read, or that wrap
    g_page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    void* arena = mmap(nullptr, (kArenaPages + 2) * g_page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(arena != MAP_FAILED, "mmap");
    const uint64_t a = reinterpret_cast<uint64_t>(arena), guard = a + kArenaPages * g_page;
    mprotect(reinterpret_cast<void*>(guard), g_page, PROT_NONE);         // the guard page
    munmap(reinterpret_cast<void*>(guard + g_page), g_page);             // and an unmapped one
    g_guard_arena = arena;
    g_bad = {8, 0x1000, guard, guard + g_page, guard - 8, guard - 4,
             kMaxAddr - 8, kMaxAddr, ~uint64_t(0) - 7, ~uint64_t(0) - 0x3f, 0xdeadbeefdeadbee8ull};
}

}  // namespace

int main(int argc, char** argv) {
    double seconds = 10;
    uint64_t seed = 20240607, max_iter = UINT64_MAX;
    std::string only, reader;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--seconds" && i + 1 < argc) seconds = std::atof(argv[++i]);
        else if (a == "--long") seconds = 600;
        else if (a == "--seed" && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 0);
        else if (a == "--iterations" && i + 1 < argc) max_iter = std::strtoull(argv[++i], nullptr, 0);
        else if (a == "--only" && i + 1 < argc) only = argv[++i];
        else if (a == "--reader" && i + 1 < argc) reader = argv[++i];
        else {
            std::fprintf(stderr, "usage: %s [--seconds N | --long] [--seed S] [--iterations N] [--only linetable|decode_str|frames|threads|symbols|reads|asyncio_tasks|task_sets|waiting_tasks] [--reader vm_readv|proc_mem]\n", argv[0]);
            return 64;
        }
    }
    const uint64_t t0 = harness::now_ns();
    harness::start_python();
    char err[512] = {0};
    spprof_layout_find_init_cleanup();
    harness::run_python("import asyncio\n");  // asyncio's Task is calibrated only once it is imported
    spprof_layout_calibrate_tasks();
    CHECK(spprof_layout_init(&L, err, sizeof err) == 0, err);
    harness::check_layout_bounds(L);
    std::string error;
    CHECK(R.open(reader, error), error);
    harness::run_python(kSetup);
    collect_inputs();

    // A walk or a list read that never ends is a failure too.
    std::atomic<bool> done{false};
    std::thread watchdog([&] {
        uint64_t last = ~uint64_t(0);
        int still = 0;
        while (!done.load()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(250));
            uint64_t now = g_heartbeat.load();
            still = now == last ? still + 1 : 0;
            last = now;
            if (still >= 120) {
                std::fprintf(stderr, "\nHANG: no iteration of %s finished in 30 s (seed %llu)\n", g_target.load(), (unsigned long long)seed);
                std::_Exit(3);
            }
        }
    });

    struct Target { const char* name; double share; void (*fn)(Rng&, uint64_t, uint64_t, TargetStats&); };
    const Target targets[] = {{"linetable", 0.15, fuzz_linetable}, {"decode_str", 0.10, fuzz_decode_str},
                              {"frames", 0.35, fuzz_frames}, {"threads", 0.15, fuzz_threads}, {"symbols", 0.15, fuzz_symbols},
                              {"reads", 0.10, fuzz_reads}, {"asyncio_tasks", 0.10, fuzz_asyncio_tasks},
                              {"task_sets", 0.05, fuzz_task_sets}, {"waiting_tasks", 0.05, fuzz_waiting_tasks}};
    std::printf("fuzz_readers: Python %d.%d (frame model %d, line table format %d), seed %llu, %.0f s, reader %s\n",
                L.py_major, L.py_minor, L.frame_model, L.linetable_format, (unsigned long long)seed, seconds, R.method_name());
    std::printf("inputs: %zu real code objects, %zu strs, %zu bytes objects, %zu blocked threads with %zu frames\n",
                g_codes.size(), g_strs.size(), g_bytes_objs.size(), g_threads.size(), g_real_frames.size());
    std::fflush(stdout);
    double share_sum = 0;
    for (const Target& t : targets) if (only.empty() || only == t.name) share_sum += t.share;
    CHECK(share_sum > 0, "no such target: " + only);
    uint64_t total_iter = 0;
    for (size_t k = 0; k < sizeof targets / sizeof targets[0]; ++k) {
        const Target& t = targets[k];
        if (!only.empty() && only != t.name) continue;
        g_target = t.name;
        TargetStats st;
        st.name = t.name;
        Rng rng(seed * 0x100000001b3ull + k);
        uint64_t start = harness::now_ns();
        t.fn(rng, start + static_cast<uint64_t>(seconds * t.share / share_sum * 1e9), max_iter, st);
        st.seconds = (harness::now_ns() - start) / 1e9;
        total_iter += st.iterations;
        std::printf("  %-10s %9llu iterations in %5.1f s", t.name, (unsigned long long)st.iterations, st.seconds);
        const char* sep = ": ";
        for (const auto& n : st.notes) { std::printf("%s%s %llu", sep, n.first.c_str(), (unsigned long long)n.second); sep = ", "; }
        std::printf("\n");
        std::fflush(stdout);
    }
    done = true;
    watchdog.join();
    harness::run_python("release.set()\nfor t in blockers: t.join()\n");
    std::printf("fuzz_readers: clean, %llu iterations in %.1f s\n", (unsigned long long)total_iter, (harness::now_ns() - t0) / 1e9);
    return 0;
}
