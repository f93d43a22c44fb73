// Target: waiting_tasks, WaitingTasks::next(): every suspended asyncio task of a thread, followed
// from its coroutine down to its await point. The setup runs a real event loop in a thread of its
// own, blocked in a callback (no task runs) while its tasks wait: in asyncio.sleep under two
// coroutines of ours, on an Event, in a generator-based coroutine's `yield from`, at sleep(0)'s
// bare yield, on another task, under a default name, as a Task subclass, and one never started;
// and a task of another loop that is not running. The loop thread's state, the tasks, their
// coroutines (3.9/3.10: and their frame objects) are copied into an image with their pointers
// relocated into it. Each input links the tasks in the image's thread list (3.14) or puts weak
// references to them in the image's set of tasks (3.9-3.13, with the other loop's task, dead
// references and dummies), in a random order, sometimes one left out or marked running; the
// copied thread state keeps its running loop (3.13), or points at the thread's real dict, where
// 3.9-3.12 keep it.
// Unmutated, every suspended task is sampled once, its name as CPython has it, its chain the
// coroutines cr_await gives at the instructions f_lasti gives, cut at max_depth, and (3.14) the
// task awaiting it named above it. Mutated (or crowded with more references than a tick reads,
// or with words changing under the reads as a running loop changes them), over a few ticks, it
// may sample anything, but at most kPerRead a tick, each sample a chain of code objects
// ended by well-formed task records, inside the buffer the sampler gives (max_depth + kTaskCells).
// A reader that reads tasks at one tick in two samples each unmutated input's suspended tasks
// once at the first of two ticks, weighted by the time since it last read them, and none at the
// second.
#include "fuzz.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "asyncio_tasks.h"
#include "bytes.h"
#include "frame_capture.h"
#include "waiting_tasks.h"

using namespace spprof;
using harness::fmt;

namespace fuzz {

namespace {

const char* kLoopSetup = R"PY(
import asyncio, sys, threading, types
aio_ready, aio_release = threading.Event(), threading.Event()
async def aio_leaf():
    await asyncio.sleep(3600)
async def aio_mid():
    await aio_leaf()
async def aio_top():
    await aio_mid()
async def aio_on_event(ev):
    await ev.wait()
@types.coroutine
def aio_legacy(fut):
    yield from fut
async def aio_via_legacy():
    await aio_legacy(asyncio.get_running_loop().create_future())
async def aio_spin():
    while True:
        await asyncio.sleep(0)
async def aio_awaits(t):
    await t
class AioTask(asyncio.Task):
    pass
def aio_block():  # the loop stands here, in a callback (no task runs), while the tasks are read
    aio_tasks.append(aio_loop.create_task(aio_mid(), name="fresh"))  # its first step never runs
    aio_ready.set()
    aio_release.wait()
    aio_loop.stop()
def aio_main():
    global aio_loop
    aio_loop = asyncio.new_event_loop()
    asyncio.set_event_loop(aio_loop)
    ev = asyncio.Event()
    sleeper = aio_loop.create_task(aio_top(), name="sleeper")
    aio_tasks.extend([sleeper, aio_loop.create_task(aio_on_event(ev), name="event-waiter"),
                      aio_loop.create_task(aio_via_legacy(), name="\u540d" * 30),
                      aio_loop.create_task(aio_spin(), name="spinner"),
                      aio_loop.create_task(aio_awaits(sleeper), name="awaiter"),
                      aio_loop.create_task(aio_top()),
                      AioTask(aio_mid(), loop=aio_loop, name="subclass")])
    # more than a tick reads: a pass over all of them takes two
    aio_tasks.extend(aio_loop.create_task(aio_leaf(), name="leaf-%d" % i) for i in range(11))
    aio_loop.call_later(0.2, aio_block)
    aio_loop.run_forever()
    for t in aio_tasks:
        t.cancel()
    aio_loop.run_until_complete(asyncio.gather(*aio_tasks, return_exceptions=True))
    aio_loop.close()
aio_tasks = []
aio_thread = threading.Thread(target=aio_main)
aio_thread.start()
aio_ready.wait()
aio_ident = aio_thread.ident
aio_other_loop = asyncio.new_event_loop()
aio_other = aio_other_loop.create_task(aio_leaf(), name="other-loop")
aio_old = sys.version_info < (3, 11)  # a coroutine's frame is an object of its own
# CPython's answer: each task's coroutines, outermost first, as cr_await (gi_yieldfrom) links them
def aio_chain(t):
    levels, c = [], t.get_coro()
    while type(c) in (types.CoroutineType, types.GeneratorType):
        f = c.cr_frame if type(c) is types.CoroutineType else c.gi_frame
        levels.append((c, c.__sizeof__(), f.f_code, f.f_lasti, f if aio_old else None,
                       f.__sizeof__() if aio_old else 0))
        c = c.cr_await if type(c) is types.CoroutineType else c.gi_yieldfrom
    return levels
aio_info = [(t, aio_chain(t)) for t in aio_tasks + [aio_other]]
# 3.14 links a task to the one awaiting it: the sleeper's awaiter is named above it
aio_parents = {0: 4} if sys.version_info >= (3, 14) else {}
)PY";

const char* kLoopTeardown = R"PY(
aio_release.set()
aio_thread.join()
aio_other.cancel()
aio_other_loop.run_until_complete(asyncio.gather(aio_other, return_exceptions=True))
aio_other_loop.close()
)PY";

constexpr size_t kPad = 1024;     // after each copied object: the reader's windows stay in the image
constexpr size_t kSetSlots = 32;
constexpr size_t kRefBytes = 64;  // of a weak reference in the image
constexpr size_t kScratch = 2048; // fake name objects
constexpr int kDepths[] = {1, 3, 8, 40};
constexpr int kDepthsN = sizeof kDepths / sizeof kDepths[0];
constexpr int kOnePass = 11;      // tasks of an unmutated list or set read in one tick
constexpr int kPerRead = 16;      // tasks a tick reads, fewer than the fixture's: passes in turns

// One coroutine of a chain, in the image.
struct Level {
    uint64_t code = 0, frame = 0;  // the code object (real), the frame's address (the image's)
    int64_t lasti = 0;             // f_lasti, as CPython gives it
    uint64_t obj = 0;              // the coroutine (the image's)
    size_t state = 0;              // offset of its state byte (3.9/3.10: its frame object's)
    int64_t top = -1;              // offset of the word it awaits; -1: none
};

struct Task {
    uint64_t real = 0, img = 0;
    std::string name;               // as CPython has it
    std::vector<Level> chain;       // outermost first
    int parent = -1;                // the task awaiting it (3.14)
};

// A reader as the sampler has one, with the buffer it gives next(): max_depth + kTaskCells cells
// exactly, so that ASan sees a write past it.
struct Reader {
    int max_depth;
    std::unique_ptr<FrameCapture> capture;
    std::unique_ptr<AsyncioTasks> tasks;
    std::unique_ptr<WaitingTasks> waiting;
    std::vector<FrameRecord> frames;
    Reader(const spprof_layout& l, int depth, int stride = 1)
        : max_depth(depth), capture(new FrameCapture(l, R, depth)), tasks(new AsyncioTasks(l, R)),
          waiting(new WaitingTasks(l, R, *tasks, *capture, depth, stride, kPerRead)),
          frames(static_cast<size_t>(depth) + kTaskCells) {}
};

// One sample: a chain of frames whose code objects are code objects at instructions inside them,
// then task records one after the other to its end. Returns the chain's length.
int check_sample(const FrameRecord* f, int depth, int max_depth, std::vector<TaskRecord>& records, uint64_t iter) {
    const int chain_max = std::min(max_depth, kAwaitChain);
    CHECK(depth >= 3 && depth <= chain_max + kTaskCells,
          fmt("#%llu: a sample of depth %d (max_depth %d)", (unsigned long long)iter, depth, max_depth));
    int end = 0;
    const int chain = task_records(f, depth, records, end, fmt("#%llu", (unsigned long long)iter));
    CHECK(end == depth, fmt("#%llu: cells after a task record that are no task record", (unsigned long long)iter));
    CHECK(chain >= 1 && chain <= chain_max, fmt("#%llu: a chain of %d frames (max_depth %d)", (unsigned long long)iter, chain, max_depth));
    CHECK(records.size() <= 1 + static_cast<size_t>(kTaskParents), fmt("#%llu: %zu task records", (unsigned long long)iter, records.size()));
    for (int k = 0; k < chain; ++k) {
        bool ok = false;
        const uint64_t type = read_u64(f[k].code + L.ob_type, ok);
        CHECK(ok && type == L.code_type, fmt("#%llu: frame %d's code %llx is no code object", (unsigned long long)iter, k, (unsigned long long)f[k].code));
        CHECK(f[k].instr_bytes >= -1, fmt("#%llu: frame %d at instruction %lld", (unsigned long long)iter, k, (long long)f[k].instr_bytes));
        if (L.frame_model != SPPROF_FRAMES_OBJECTS) {
            const int64_t units = static_cast<int64_t>(read_u64(f[k].code + L.ob_size, ok));
            CHECK(ok && f[k].instr_bytes / 2 < units, fmt("#%llu: frame %d at byte %lld of %lld code units", (unsigned long long)iter, k,
                                                           (long long)f[k].instr_bytes, (long long)units));
        }
    }
    return chain;
}

}  // namespace

void fuzz_waiting_tasks(Rng& rng, uint64_t deadline, uint64_t max_iter, TargetStats& st) {
    const bool listed = L.task_node != 0;  // 3.14: each thread's list of tasks; else the set
    if (L.tasks_model == SPPROF_TASKS_OFF || (!listed && L.scheduled_tasks == 0)) {
        const std::string why = L.tasks_model == SPPROF_TASKS_OFF ? L.tasks_off : "no list or set of tasks found";
        std::printf("  waiting_tasks: skipped, suspended tasks are not read here: %s\n", why.c_str());
        st.notes["skipped (suspended tasks not read)"] = 1;
        return;
    }
    const uint64_t setup_t0 = harness::now_ns();
    harness::run_python(kLoopSetup);
    const uint64_t tag = L.if_code_tag_mask;

    // --- the objects, their sizes and CPython's answers, with the GIL ----------------------------
    struct Region { uint64_t addr; size_t len; size_t off; };
    std::vector<Region> regions;
    auto add_region = [&](uint64_t addr, size_t len) {
        for (const Region& r : regions) if (r.addr == addr) return;
        regions.push_back({addr, (len + 7) & ~size_t(7), 0});
    };
    PyObject* ident_obj = harness::main_global("aio_ident");
    const unsigned long ident = PyLong_AsUnsignedLong(ident_obj);
    Py_DECREF(ident_obj);
    uint64_t real_ts = 0;
    for (PyThreadState* t = PyInterpreterState_ThreadHead(PyInterpreterState_Get()); t != nullptr; t = PyThreadState_Next(t))
        if (t->thread_id == ident) real_ts = reinterpret_cast<uint64_t>(t);
    CHECK(real_ts != 0, "the loop thread's state was not found");
    const size_t ts_len = std::max({static_cast<size_t>(L.ts_size), static_cast<size_t>(L.ts_tasks_head) + 16,
                                    static_cast<size_t>(L.ts_running_task) + 8, static_cast<size_t>(L.ts_running_loop) + 8,
                                    static_cast<size_t>(L.ts_dict) + 8});
    add_region(real_ts, ts_len);
    std::vector<Task> tasks;
    PyObject* info = harness::main_global("aio_info");
    for (Py_ssize_t i = 0; i < PyList_Size(info); ++i) {
        PyObject* t = PyList_GetItem(info, i);
        Task task;
        PyObject* obj = PyTuple_GetItem(t, 0);
        task.real = reinterpret_cast<uint64_t>(obj);
        add_region(task.real, std::max<size_t>(static_cast<size_t>(Py_TYPE(obj)->tp_basicsize), L.task_copy));
        // The name as the Task holds it: a str, or (3.12+) the number of a default name.
        PyObject* name = *reinterpret_cast<PyObject**>(reinterpret_cast<char*>(obj) + L.task_name);
        if (PyLong_CheckExact(name)) {
            task.name = fmt("Task-%lld", PyLong_AsLongLong(name));
        } else {
            CHECK(PyUnicode_CheckExact(name), "a task's name is neither a str nor an int");
            PyObject* utf8 = PyUnicode_AsEncodedString(name, "utf-8", "surrogatepass");
            task.name.assign(PyBytes_AsString(utf8), static_cast<size_t>(PyBytes_Size(utf8)));
            Py_DECREF(utf8);
        }
        PyObject* levels = PyTuple_GetItem(t, 1);
        for (Py_ssize_t k = 0; k < PyList_Size(levels); ++k) {
            PyObject* lv = PyList_GetItem(levels, k);
            Level level;
            level.obj = reinterpret_cast<uint64_t>(PyTuple_GetItem(lv, 0));
            level.code = reinterpret_cast<uint64_t>(PyTuple_GetItem(lv, 2));
            level.lasti = PyLong_AsLongLong(PyTuple_GetItem(lv, 3));
            add_region(level.obj, std::max<size_t>(PyLong_AsSize_t(PyTuple_GetItem(lv, 1)), L.coro_frame + 8));
            if (L.frame_model == SPPROF_FRAMES_OBJECTS) {
                level.frame = reinterpret_cast<uint64_t>(PyTuple_GetItem(lv, 4));
                add_region(level.frame, std::max<size_t>(PyLong_AsSize_t(PyTuple_GetItem(lv, 5)), L.fo_size));
            }
            task.chain.push_back(level);
        }
        CHECK(!task.chain.empty(), fmt("task '%s' has no coroutine", task.name.c_str()));
        tasks.push_back(std::move(task));
    }
    Py_DECREF(info);
    PyObject* parents = harness::main_global("aio_parents");
    PyObject *pk, *pv;
    Py_ssize_t pos = 0;
    while (PyDict_Next(parents, &pos, &pk, &pv)) tasks[PyLong_AsSize_t(pk)].parent = static_cast<int>(PyLong_AsLong(pv));
    Py_DECREF(parents);
    const size_t n_own = tasks.size() - 1;  // the loop thread's; the last is the other loop's
    // With the other loop's task and three dead references, kOnePass tasks are read in one tick
    // (the set's end seen with budget left), all of them in two.
    const size_t per_tick = static_cast<size_t>(kPerRead);
    CHECK(kOnePass + 1 + 3 < kPerRead && n_own > per_tick && n_own + 1 + 3 < std::min(2 * per_tick, kSetSlots),
          fmt("%zu tasks, for one tick's pass and a pass in two", n_own));
    CHECK(listed || (std::max(L.set_mask, L.set_table) + 8 <= 256 && L.set_entry_size <= 32 && L.wr_object + 8 <= kRefBytes),
          "the image's set is too small for this layout");

    // --- the image: every object copied, its pointers relocated ------------------------------------
    std::sort(regions.begin(), regions.end(), [](const Region& a, const Region& b) { return a.addr < b.addr; });
    for (size_t k = 1; k < regions.size(); ++k)
        CHECK(regions[k - 1].addr + regions[k - 1].len <= regions[k].addr, "two copied objects overlap");
    size_t off = 0;
    for (Region& r : regions) {
        r.off = off;
        off += r.len + kPad;
    }
    const size_t set_off = off, table_off = set_off + 256, refs_off = table_off + kSetSlots * 32,
                 dummy_off = refs_off + kSetSlots * kRefBytes, types_off = dummy_off + 64, scratch_off = types_off + 1024;
    const size_t size = scratch_off + kScratch + kPad;
    std::vector<uint64_t> clean(size / 8), work(size / 8);
    uint8_t* c = reinterpret_cast<uint8_t*>(clean.data());
    uint8_t* img = reinterpret_cast<uint8_t*>(work.data());
    const uint64_t base = reinterpret_cast<uint64_t>(img);
    for (const Region& r : regions) CHECK(R.read(r.addr, c + r.off, r.len), "cannot copy a live asyncio object");
    // A pointer into an object (3.14: a tagged stack reference too) points at its copy; one just
    // past an object's end only when it lies inside no other.
    auto relocate = [&](uint64_t v, uint64_t& out) {
        const uint64_t a = v & ~tag;
        if ((a & 7) != 0) return false;
        for (int pass = 0; pass < 2; ++pass)
            for (const Region& r : regions)
                if (pass == 0 ? (a >= r.addr && a < r.addr + r.len) : a == r.addr + r.len) {
                    out = (base + r.off + (a - r.addr)) | (v & tag);
                    return true;
                }
        return false;
    };
    for (size_t w = 0; w < set_off / 8; ++w) relocate(clean[w], clean[w]);
    auto image_of = [&](uint64_t real) {
        uint64_t out = 0;
        CHECK(relocate(real, out), "an object that was not copied");
        return out;
    };
    const uint64_t ts = image_of(real_ts), head = ts + L.ts_tasks_head;
    for (Task& t : tasks) {
        t.img = image_of(t.real);
        for (Level& lv : t.chain) {
            lv.obj = image_of(lv.obj);
            if (L.frame_model == SPPROF_FRAMES_OBJECTS) lv.frame = image_of(lv.frame);
            else lv.frame = lv.obj + L.coro_frame;
        }
        for (size_t k = 0; k < t.chain.size(); ++k) {
            // Where the frame keeps the object it awaits, by the layout: it must be the next coroutine.
            Level& lv = t.chain[k];
            const uint64_t fo = lv.frame - base;
            uint64_t top = 0;
            if (L.frame_model == SPPROF_FRAMES_OBJECTS) {
                lv.state = fo + L.fo_state;
                if (L.fo_stacktop != 0) top = load_u64(c + fo + L.fo_stacktop) - 8;
                else top = load_u64(c + fo + L.fo_valuestack) + 8 * static_cast<uint64_t>(static_cast<int64_t>(load_i32(c + fo + L.fo_stackdepth)) - 1);
            } else {
                lv.state = lv.obj - base + L.gen_frame_state;
                if (L.if_stacktop != 0) top = lv.frame + L.if_localsplus + 8 * static_cast<uint64_t>(static_cast<int64_t>(load_i32(c + fo + L.if_stacktop)) - 1);
                else top = (load_u64(c + fo + L.if_stackpointer) & ~tag) - 8;
            }
            if (top >= base && top + 8 <= base + set_off) lv.top = static_cast<int64_t>(top - base);
            if (k + 1 < t.chain.size())
                CHECK(lv.top >= 0 && (load_u64(c + lv.top) & ~tag) == t.chain[k + 1].obj,
                      fmt("task '%s': level %zu's stack top is not the coroutine it awaits", t.name.c_str(), k));
        }
    }
    if (listed) {
        // The loop thread's list holds exactly its tasks (a task subclass's too).
        std::set<uint64_t> want, got;
        for (size_t i = 0; i < n_own; ++i) want.insert(tasks[i].img + L.task_node);
        uint64_t node = load_u64(c + (head - base));
        for (size_t k = 0; k < 64 && node != head; ++k) {
            got.insert(node);
            CHECK(node >= base && node + 16 <= base + set_off, "the loop thread's list leads out of the image");
            node = load_u64(c + (node - base));
        }
        CHECK(node == head && got == want, fmt("the loop thread's list holds %zu nodes, not its %zu tasks", got.size(), want.size()));
    }
    store_u64(c + dummy_off + L.ob_type, L.unicode_type);  // a set's dummy, as task_sets.cpp has it
    // two made-up types: a subclass of Task, and one that is its own base
    CHECK(L.type_base + 8 <= 512, "a type's base lies past the image's room for it");
    store_u64(c + types_off + L.type_base, L.task_type);
    store_u64(c + types_off + 512 + L.type_base, base + types_off + 512);

    // --- what mutations aim at ---------------------------------------------------------------------
    std::vector<uint64_t> hot64, hot32, hot8, names, bys, nodes, objs;
    for (uint32_t f : {L.ts_running_task, L.ts_tasks_head, L.ts_running_loop, L.ts_dict})
        if (f != 0) hot64.push_back(ts - base + f);
    if (listed) hot64.push_back(head - base + 8);
    else for (uint32_t f : {L.set_mask, L.set_table}) hot64.push_back(set_off + f);  // a table replaced, or torn
    for (const Task& t : tasks) {
        const uint64_t o = t.img - base;
        for (uint32_t f : {L.ob_type, L.task_coro, L.task_loop})
            if (f != 0) hot64.push_back(o + f);
        names.push_back(o + L.task_name);
        if (L.task_awaited_by != 0) bys.push_back(o + L.task_awaited_by);
        if (listed) nodes.push_back(o + L.task_node);
        objs.push_back(t.img);
        objs.push_back(t.real);
        for (const Level& lv : t.chain) {
            const uint64_t co = lv.obj - base, fo = lv.frame - base;
            hot64.push_back(co + L.ob_type);
            hot8.push_back(lv.state);
            objs.push_back(lv.obj);
            objs.push_back(lv.frame);
            if (L.frame_model == SPPROF_FRAMES_OBJECTS) {
                for (uint32_t f : {L.fo_gen, L.fo_code, L.fo_stacktop, L.fo_valuestack})
                    if (f != 0) hot64.push_back(fo + f);
                hot64.push_back(fo + L.ob_type);
                hot64.push_back(co + L.coro_frame);
                hot32.push_back(fo + L.fo_lasti);
                if (L.fo_stackdepth != 0) hot32.push_back(fo + L.fo_stackdepth);
            } else {
                hot64.push_back(fo + L.if_code);
                hot64.push_back(fo + L.if_instr);
                if (L.if_stacktop != 0) hot32.push_back(fo + L.if_stacktop);
                else hot64.push_back(fo + L.if_stackpointer);
            }
        }
    }
    objs.push_back(head);
    objs.push_back(reinterpret_cast<uint64_t>(Py_None));
    if (L.task_loop != 0) objs.push_back(load_u64(c + (tasks[0].img - base) + L.task_loop));  // the loop
    for (uint64_t type : {L.task_type, L.coro_type, L.gen_type, L.long_type, L.unicode_type, L.weakref_type, L.frame_type,
                          base + types_off, base + types_off + 512})
        if (type != 0) objs.push_back(type);
    for (const RealStr& s : g_strs) if (s.is_str && s.compact) objs.push_back(reinterpret_cast<uint64_t>(s.obj));

    // --- the readers: one set sees only unmutated images (each input ends its pass), one the rest ---
    spprof_layout lay = L;  // the readers keep a reference
    if (!listed) lay.scheduled_tasks = base + set_off;
    std::vector<std::unique_ptr<Reader>> oracle, fuzzed;
    for (int d : kDepths) {
        oracle.emplace_back(new Reader(lay, d));
        fuzzed.emplace_back(new Reader(lay, d, d == 3 ? 3 : 1));  // one reads tasks at one tick in three
    }
    Reader strided(lay, 40, 2);
    uint64_t strided_since = 0, strided_checked = 0;
    CHECK(oracle[0]->waiting->enabled(), "WaitingTasks is off with the tasks calibrated");

    uint64_t i = 0, samples = 0, clean_passes = 0, clean_tasks = 0, running_left = 0, cut = 0, parents_named = 0,
             oracle_rejected = 0, garbage_threads = 0, spent = 0, worst_ns = 0, lives = 0, passes_in_turns = 0;
    std::vector<TaskRecord> records;
    std::vector<size_t> order;
    std::vector<int> reported(tasks.size());
    bool one_tick[kDepthsN];  // each oracle reader's last pass took one tick (or it had none)
    std::fill(one_tick, one_tick + kDepthsN, true);
    WordChurn churn;  // as a loop that runs its tasks rewrites them
    churn.start();
    deadline += harness::now_ns() - setup_t0;  // the fuzzing keeps its share of the time
    for (; i < max_iter && (i & 15 || harness::now_ns() < deadline); ++i) {
        g_heartbeat.fetch_add(1, std::memory_order_relaxed);
        std::copy(clean.begin(), clean.end(), work.begin());
        const bool unmutated = rng.chance(30);
        const bool turns = unmutated && rng.chance(20);  // a pass over two ticks
        // The tasks in the list or set, in a random order, one sometimes left out; one sometimes
        // running. An unmutated pass in one tick has kOnePass of them.
        order.clear();
        for (size_t k = 0; k < n_own; ++k) order.push_back(k);
        for (size_t k = order.size(); k > 1; --k) std::swap(order[k - 1], order[rng.below(k)]);
        if (rng.chance(15)) order.pop_back();
        if (unmutated && !turns) order.resize(std::min<size_t>(order.size(), kOnePass));
        int running = -1;
        if (!order.empty() && rng.chance(25)) {
            running = static_cast<int>(rng.pick(order));
            const Task& t = tasks[static_cast<size_t>(running)];
            if (listed && rng.chance(50)) {
                store_u64(img + (ts - base) + L.ts_running_task, t.img);
            } else {
                // its coroutine runs: 3.11+ FRAME_EXECUTING (0); 3.9/3.10 the frame's executing state
                img[t.chain[0].state] = static_cast<uint8_t>(L.frame_model == SPPROF_FRAMES_OBJECTS ? L.fo_running : 0);
            }
        }
        if (listed) {
            uint64_t prev = head;
            for (size_t k : order) {
                const uint64_t node = tasks[k].img + L.task_node;
                store_u64(img + (prev - base), node);
                store_u64(img + (node - base) + 8, prev);
                prev = node;
            }
            store_u64(img + (prev - base), head);
            store_u64(img + (head - base) + 8, prev);
        } else {
            // the set: a table of 16 or 32 slots, the tasks (and the other loop's) at random ones,
            // dead references and dummies among them
            const uint64_t slots = rng.chance(50) && order.size() <= static_cast<size_t>(kOnePass) ? 16 : kSetSlots;
            store_u64(img + set_off + L.set_mask, slots - 1);
            store_u64(img + set_off + L.set_table, base + table_off);
            std::vector<uint64_t> entries;
            for (size_t k : order) entries.push_back(tasks[k].img);
            entries.push_back(tasks[n_own].img);
            for (uint64_t d = rng.below(4); d > 0; --d) entries.push_back(reinterpret_cast<uint64_t>(Py_None));
            if (!unmutated && rng.chance(30))  // more references than a tick reads: a pass in turns
                while (entries.size() < slots) entries.push_back(tasks[rng.below(tasks.size())].img);
            std::vector<uint64_t> at;
            for (uint64_t s = 0; s < slots; ++s) at.push_back(s);
            for (size_t k = at.size(); k > 1; --k) std::swap(at[k - 1], at[rng.below(k)]);
            for (size_t e = 0; e < at.size(); ++e) {
                uint8_t* entry = img + table_off + at[e] * L.set_entry_size;
                if (e < entries.size()) {
                    const size_t ref = refs_off + at[e] * kRefBytes;
                    store_u64(entry + L.set_entry_key, base + ref);
                    store_u64(img + ref + L.ob_type, L.weakref_type);
                    store_u64(img + ref + L.wr_object, entries[e]);
                } else if (rng.chance(20)) {
                    store_u64(entry + L.set_entry_key, base + dummy_off);
                }
            }
        }
        // then mutations, or (live) words that change while the reader reads
        const bool live = !unmutated && rng.chance(10);
        const int muts = unmutated || live ? 0 : static_cast<int>(1 + rng.below(6));
        for (int m = 0; m < muts; ++m) {
            switch (rng.below(14)) {
                case 0: case 1: case 2:
                    store_u64(img + rng.pick(hot64), pool_word(rng, base, size, &objs)); break;
                case 3: {  // a state flipped: created, suspended (in an await or not), running, done, anything
                    const int v[] = {L.frame_created, L.frame_suspended, L.frame_suspended_yield_from, 0, 1, L.fo_running};
                    img[rng.pick(hot8)] = static_cast<uint8_t>(rng.chance(85) ? v[rng.below(6)] : rng.next());
                    break;
                }
                case 4: if (!hot32.empty()) store_i32(img + rng.pick(hot32), static_cast<int32_t>(interesting_int(rng))); break;
                case 5: img[rng.below(size)] ^= static_cast<uint8_t>(1u << rng.below(8)); break;
                case 6: work[rng.below(work.size())] = pool_word(rng, base, size, &objs); break;
                case 7: case 8: {  // a chain cut, looped back, or led into another task's chain or a task
                    const Task& t = tasks[rng.below(tasks.size())];
                    const Level& lv = t.chain[rng.below(t.chain.size())];
                    if (lv.top < 0) break;
                    const Task& u = tasks[rng.below(tasks.size())];
                    const uint64_t to[] = {t.chain[rng.below(t.chain.size())].obj, lv.obj, u.chain[rng.below(u.chain.size())].obj,
                                           u.img, 0, reinterpret_cast<uint64_t>(Py_None), pool_word(rng, base, size, &objs)};
                    store_u64(img + lv.top, to[rng.below(7)] | (rng.chance(20) ? rng.below(tag + 1) : 0));
                    break;
                }
                case 9: {  // the list looped or cut; the set's references doubled or dead
                    if (listed) {
                        const uint64_t n = rng.pick(nodes);
                        const uint64_t to[] = {n + base, rng.pick(nodes) + base, head, 0, pool_word(rng, base, size, &objs)};
                        store_u64(img + n + (rng.chance(80) ? 0 : 8), to[rng.below(5)]);
                    } else {
                        const uint64_t s = rng.below(kSetSlots);
                        if (rng.chance(50)) store_u64(img + table_off + s * L.set_entry_size + L.set_entry_key, base + refs_off + rng.below(kSetSlots) * kRefBytes);
                        else store_u64(img + refs_off + s * kRefBytes + (rng.chance(70) ? L.wr_object : L.ob_type), pool_word(rng, base, size, &objs));
                        if (rng.chance(30)) store_u64(img + set_off + (rng.chance(50) ? L.set_mask : L.set_table), pool_word(rng, base, size, &objs));
                    }
                    break;
                }
                case 10: case 11: {  // a name of a bad kind: a str of any kind, bytes, an int of any size, a fake str
                    uint64_t to = 0;
                    const size_t fake = scratch_off + 256 * rng.below(kScratch / 256);
                    switch (rng.below(5)) {
                        case 0: to = rng.pick(g_str_addrs); break;
                        case 1: to = rng.pick(g_bytes_addrs); break;
                        case 2:
                            store_u64(img + fake + L.ob_type, L.long_type);
                            if (L.long_tag != 0) {
                                store_u64(img + fake + L.long_tag, rng.chance(50) ? rng.below(4) | (rng.below(4) << 3) : static_cast<uint64_t>(interesting_int(rng)));
                                store_u64(img + fake + L.long_digit, rng.next());
                            }
                            to = base + fake;
                            break;
                        case 3:
                            store_u64(img + fake + L.ob_type, L.unicode_type);
                            store_u64(img + fake + L.str_length, static_cast<uint64_t>(interesting_int(rng)));
                            store_u64(img + fake + L.str_state, rng.next());
                            to = base + fake;
                            break;
                        default: to = pool_word(rng, base, size, &objs);
                    }
                    store_u64(img + rng.pick(names), to);
                    break;
                }
                case 12: {  // 3.14: the awaiting link to itself, to a task that awaits it back, to anything
                    if (bys.empty()) break;
                    const uint64_t to[] = {rng.pick(objs), tasks[rng.below(tasks.size())].img, 0, pool_word(rng, base, size, &objs)};
                    store_u64(img + rng.pick(bys), to[rng.below(4)]);
                    break;
                }
                default:  // a field read past the image, or wrapping
                    store_u64(img + rng.pick(hot64), rng.chance(50) ? ~uint64_t(0) - 8 * rng.below(16) : base + size - 8 * rng.below(4));
            }
        }
        if (live) {
            // A coroutine's state flipped, a task's coroutine or name, what a coroutine awaits or
            // a link swapped for another object of the kind: code objects stay as they are.
            churn.n = 0;
            for (int m = 0; m < 4; ++m) {
                const Task& t = tasks[rng.below(tasks.size())];
                const Task& u = tasks[rng.below(tasks.size())];
                const Level& lv = t.chain[rng.below(t.chain.size())];
                uint64_t at = 0, other = 0;
                switch (rng.below(5)) {
                    case 0: {
                        at = lv.state & ~size_t(7);
                        other = load_u64(img + at);
                        const int v[] = {L.frame_created, L.frame_suspended, L.frame_suspended_yield_from, 0, 1};
                        reinterpret_cast<uint8_t*>(&other)[lv.state & 7] = static_cast<uint8_t>(v[rng.below(5)]);
                        break;
                    }
                    case 1: at = t.img - base + L.task_coro; other = u.chain[0].obj; break;
                    case 2: at = t.img - base + L.task_name; other = load_u64(img + (u.img - base) + L.task_name); break;
                    case 3:
                        if (lv.top < 0) continue;
                        at = static_cast<uint64_t>(lv.top);
                        other = u.chain[rng.below(u.chain.size())].obj;
                        break;
                    default:
                        if (listed) { at = t.img - base + L.task_node; other = u.img + L.task_node; }
                        else { at = refs_off + rng.below(kSetSlots) * kRefBytes + L.wr_object; other = u.img; }
                }
                churn.words[churn.n] = reinterpret_cast<uint64_t*>(img + at);
                churn.values[churn.n][0] = churn.values[churn.n][2] = load_u64(img + at);
                churn.values[churn.n][1] = churn.values[churn.n][3] = other;
                ++churn.n;
            }
            churn.run();
            ++lives;
        }
        const size_t which = rng.below(kDepthsN);
        Reader& rd = unmutated ? *oracle[which] : *fuzzed[which];
        const int ticks = turns ? 2 : unmutated ? 1 : 1 + static_cast<int>(rng.below(3));
        uint64_t second_weight = 0;
        std::fill(reported.begin(), reported.end(), 0);
        for (int tick = 0; tick < ticks; ++tick) {
            if (tick > 0 && !unmutated && !live && rng.chance(30)) {  // the list changed between two ticks
                if (rng.chance(50)) std::copy(clean.begin(), clean.end(), work.begin());
                else store_u64(img + rng.pick(hot64), pool_word(rng, base, size, &objs));
            }
            const uint64_t t_ns = harness::now_ns(), weight = 1 + rng.below(100000000);
            const bool other_thread = !unmutated && rng.chance(15);
            rd.tasks->begin_tick();  // as the sampler's tick: the awaiters' records kept are checked again
            rd.waiting->begin_tick(other_thread ? 2 : 1, weight);
            int in_tick = 0;
            for (int thread = 0; thread < (other_thread ? 2 : 1); ++thread) {
                // the loop thread's image, or (a second thread) a state that is anything
                const uint64_t ts_addr = thread == 0 ? ts : pool_word(rng, base, size, &objs);
                garbage_threads += thread;
                rd.waiting->begin_thread(static_cast<size_t>(thread), ts_addr, t_ns, !unmutated && rng.chance(20));
                int depth = -1;
                uint64_t w = 0;
                const uint64_t t0 = harness::now_ns();
                while (rd.waiting->next(rd.frames.data(), depth, w)) {
                    ++in_tick;
                    CHECK(in_tick <= kPerRead, fmt("#%llu: more than %d tasks sampled in one tick", (unsigned long long)i, kPerRead));
                    ++samples;
                    CHECK(w <= t_ns, fmt("#%llu: a sample weighs %llu ns at %llu ns", (unsigned long long)i, (unsigned long long)w, (unsigned long long)t_ns));
                    const int chain = check_sample(rd.frames.data(), depth, rd.max_depth, records, i);
                    if (!unmutated) continue;
                    // the oracle: a task of the list or set, suspended, as CPython has it
                    size_t k = 0;
                    while (k < n_own && tasks[k].img != records[0].task) ++k;
                    CHECK(k < n_own, fmt("#%llu: task %llx sampled, which is none of the loop's", (unsigned long long)i, (unsigned long long)records[0].task));
                    const Task& t = tasks[k];
                    CHECK(std::find(order.begin(), order.end(), k) != order.end() && static_cast<int>(k) != running,
                          fmt("#%llu: task '%s' sampled, which is %s", (unsigned long long)i, t.name.c_str(),
                              static_cast<int>(k) == running ? "running" : "not in the list"));
                    CHECK(++reported[k] == 1, fmt("#%llu: task '%s' sampled twice in one pass", (unsigned long long)i, t.name.c_str()));
                    CHECK(same_task_name(records[0].name, t.name), fmt("#%llu: task named '%s', not '%s'", (unsigned long long)i, records[0].name.c_str(), t.name.c_str()));
                    // A pass's first tick weighs its tasks by the tick's weight when the last pass
                    // took one tick too; its later ticks by the time the last pass took (or, in
                    // the first pass, the time since it started).
                    if (tick == 0)
                        CHECK(!one_tick[which] || w == weight, fmt("#%llu: a sample weighs %llu, not the tick's %llu", (unsigned long long)i,
                                                                   (unsigned long long)w, (unsigned long long)weight));
                    else
                        CHECK(w != 0 && (second_weight == 0 || w == second_weight), fmt("#%llu: samples of one tick weigh %llu and %llu",
                              (unsigned long long)i, (unsigned long long)w, (unsigned long long)second_weight));
                    if (tick > 0) second_weight = w;
                    const int want = std::min({static_cast<int>(t.chain.size()), rd.max_depth, kAwaitChain});
                    CHECK(chain == want, fmt("#%llu: task '%s' sampled with %d frames, not %d", (unsigned long long)i, t.name.c_str(), chain, want));
                    cut += want < static_cast<int>(t.chain.size());
                    for (int f = 0; f < chain; ++f) {
                        const Level& lv = t.chain[static_cast<size_t>(chain - 1 - f)];
                        const FrameRecord& r = rd.frames[static_cast<size_t>(f)];
                        CHECK(r.code == lv.code && r.frame == lv.frame && r.instr_bytes == lv.lasti,
                              fmt("#%llu: task '%s' frame %d: code %llx frame %llx at %lld, not %llx %llx at %lld", (unsigned long long)i,
                                  t.name.c_str(), f, (unsigned long long)r.code, (unsigned long long)r.frame, (long long)r.instr_bytes,
                                  (unsigned long long)lv.code, (unsigned long long)lv.frame, (long long)lv.lasti));
                    }
                    size_t at = 1;
                    for (int p = t.parent; p >= 0 && at <= static_cast<size_t>(kTaskParents); p = tasks[static_cast<size_t>(p)].parent, ++at) {
                        CHECK(at < records.size() && records[at].task == tasks[static_cast<size_t>(p)].img &&
                              same_task_name(records[at].name, tasks[static_cast<size_t>(p)].name),
                              fmt("#%llu: task '%s' not sampled under '%s', the task awaiting it", (unsigned long long)i, t.name.c_str(),
                                  tasks[static_cast<size_t>(p)].name.c_str()));
                        ++parents_named;
                    }
                    CHECK(records.size() == at, fmt("#%llu: task '%s' sampled under %zu tasks, not %zu", (unsigned long long)i, t.name.c_str(), records.size() - 1, at - 1));
                    ++clean_tasks;
                }
                worst_ns = std::max(worst_ns, harness::now_ns() - t0);
            }
            spent += in_tick == kPerRead;
        }
        if (live) churn.park();
        if (unmutated) {
            for (size_t k : order)
                CHECK(reported[k] == (static_cast<int>(k) == running ? 0 : 1),
                      fmt("#%llu: suspended task '%s' not sampled (max_depth %d%s)", (unsigned long long)i, tasks[k].name.c_str(),
                          rd.max_depth, turns ? ", a pass in two ticks" : ""));
            ++clean_passes;
            running_left += running >= 0;
            if (!turns) {
                // Two ticks of the reader that reads tasks at one in two: the first reads them all,
                // each weighing the time since its last read (the second tick before and this one).
                for (int tick = 0; tick < 2; ++tick) {
                    const uint64_t t_ns = harness::now_ns(), weight = 1 + rng.below(100000000);
                    strided.tasks->begin_tick();
                    strided.waiting->begin_tick(1, weight);
                    strided.waiting->begin_thread(0, ts, t_ns, false);
                    const uint64_t want = strided_since + weight;
                    strided_since = tick == 0 ? 0 : weight;
                    std::vector<int> seen(tasks.size());
                    int depth = -1;
                    uint64_t w = 0;
                    while (strided.waiting->next(strided.frames.data(), depth, w)) {
                        CHECK(tick == 0, fmt("#%llu: a task sampled at a tick that reads none", (unsigned long long)i));
                        CHECK(w == want, fmt("#%llu: a task read at one tick in two weighs %llu, not %llu", (unsigned long long)i,
                                             (unsigned long long)w, (unsigned long long)want));
                        check_sample(strided.frames.data(), depth, strided.max_depth, records, i);
                        size_t k = 0;
                        while (k < n_own && tasks[k].img != records[0].task) ++k;
                        CHECK(k < n_own && ++seen[k] == 1, fmt("#%llu: a task sampled twice, or none of the loop's", (unsigned long long)i));
                    }
                    if (tick == 0)
                        for (size_t k : order)
                            CHECK(seen[k] == (static_cast<int>(k) == running ? 0 : 1),
                                  fmt("#%llu: suspended task '%s' not sampled at one tick in two", (unsigned long long)i, tasks[k].name.c_str()));
                }
                ++strided_checked;
            }
            passes_in_turns += turns;
            one_tick[which] = !turns;
        }
    }
    churn.quit();
    uint64_t rejected = 0, left_out = 0, tasks_rejected = 0;
    for (auto* set : {&oracle, &fuzzed})
        for (const auto& rd : *set) {
            rejected += rd->waiting->rejected();
            left_out += rd->waiting->left_out();
            tasks_rejected += rd->tasks->rejected();
        }
    for (const auto& rd : oracle) oracle_rejected += rd->waiting->rejected();
    CHECK(oracle_rejected == 0, fmt("%llu tasks of unmutated images rejected", (unsigned long long)oracle_rejected));
    harness::run_python(kLoopTeardown);
    st.iterations = i;
    st.notes["samples"] = samples;
    st.notes["unmutated passes, every suspended task as CPython has it"] = clean_passes;
    st.notes["unmutated: passes in two ticks"] = passes_in_turns;
    st.notes["unmutated: tasks checked"] = clean_tasks;
    st.notes["unmutated: passes with a running task left out"] = running_left;
    st.notes["unmutated: chains cut at max_depth"] = cut;
    st.notes["unmutated: awaiting tasks named (3.14)"] = parents_named;
    st.notes["rejected"] = rejected;
    st.notes["left for a later tick"] = left_out;
    st.notes["awaiting tasks rejected (3.14)"] = tasks_rejected;
    st.notes["ticks that read the most tasks"] = spent;
    st.notes["unmutated: passes checked at one tick in two"] = strided_checked;
    st.notes["threads of any state"] = garbage_threads;
    st.notes["inputs changing under the reads"] = lives;
    st.notes["slowest thread (us)"] = worst_ns / 1000;
}

}  // namespace fuzz
