// Where suspended asyncio tasks wait (wall mode): every task of a thread that is not
// running is sampled at its await point, weighted like a waiting thread.
//
// 3.14 links each Task into the list of the thread that made it (asyncio_tasks_head); a finished
// task leaves it. 3.9 to 3.13 keep one set of all tasks (task_sets.h): a thread reads it in
// the same turns, its table's index for a place, and takes the tasks of the loop it runs. A
// suspended task's coroutine awaits the object on its frame's stack top (3.13+: gi_frame_state
// FRAME_SUSPENDED_YIELD_FROM; 3.11/3.12: the RESUME after its last instruction says so; 3.9/3.10:
// always, for a coroutine; for a generator, when YIELD_FROM follows its last instruction, and its
// frame is a frame object of its own, read after the coroutine); that object,
// when a coroutine (or a generator-based one), is followed the same way, down to the innermost
// coroutine, whose frame is at its await.
// The sample is that chain, innermost first, under the task's record (asyncio_tasks.h), with the
// tasks awaiting it above; its thread is the list's thread. The running task is left out: its
// thread's own sample has it.
//
// Each task is checked like a running one (Task type or subclass, coroutine type, name), its
// chain bounded, its code objects checked like a walk's, and its coroutines' states and
// instructions, its links and its name's text read again after the copy: a task that moved
// meanwhile, or ended and left its address to a new one, is dropped and counted.
//
// Cost: the tasks are read at one tick in kTaskStride, most of whose cost is per tick read, not
// per task (the reads are batched), and at most kTasksPerRead of them then, over all threads
// (3.9-3.13: other loops' tasks the set holds count too). A list read whole carries the time
// since the last tick that read tasks. A thread with more is
// read in turns: the next such tick goes on where this one stopped, and each task sampled carries the
// time since its place in the list was last read (the time one pass over the list takes), so
// every task gets its share over a few ticks. The tasks a tick leaves for later are counted.
// Reads are made together where they can be: a batch's tasks level by level; 3.9-3.13: the
// set's entries a tick takes; 3.14: the nodes the last pass met at the places ahead, each copy
// used only when the link followed leads to that node (the list seldom changes between passes).
//
// Safety contract: runs on the sampler thread only, without the GIL; every read goes through the
// sampler's SafeReader; nothing is allocated after construction.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "asyncio_tasks.h"
#include "frame_capture.h"
#include "layout.h"
#include "safe_read.h"
#include "sample_queue.h"
#include "task_sets.h"

namespace spprof {

constexpr int kTaskStride = 4;        // ticks per tick that reads the suspended tasks
constexpr int kTasksPerRead = 64;     // tasks such a tick reads, over all threads
constexpr int kTaskListBound = 1 << 16;  // list nodes one pass follows before starting again
constexpr int kAwaitChain = 32;          // coroutines followed down from a task's own
constexpr size_t kTaskBatch = 64;        // tasks whose reads are made together
constexpr int kCachedChain = 8;          // coroutines of a chain whose frames are kept for the tick

class WaitingTasks {
public:
    // `stride` and `per_read`: kTaskStride and kTasksPerRead but in tests.
    WaitingTasks(const spprof_layout& layout, SafeReader& reader, AsyncioTasks& tasks, FrameCapture& capture,
                 int max_depth, int stride = kTaskStride, int per_read = kTasksPerRead);
    bool enabled() const { return tasks_.enabled() && (L.task_node != 0 || sets_.enabled()); }
    // After the AsyncioTasks' begin_tick(), whose tick the awaiters' records kept are checked at.
    // `threads`: the tick's thread list's length (its buffer grows here, between samples);
    // `weight`: the tick's, the time since the last one.
    void begin_tick(size_t threads, uint64_t weight) {
        if (threads > empty_.size()) empty_.resize(std::max(threads, 2 * empty_.size()));
        // places past the list's end now hold no thread: none may be found there later unread
        if (threads < listed_) std::fill(empty_.begin() + static_cast<std::ptrdiff_t>(threads), empty_.begin() + static_cast<std::ptrdiff_t>(listed_), 0);
        listed_ = threads;
        since_read_ns_ = due_ ? weight : since_read_ns_ + weight;
        due_ = ticks_++ % static_cast<uint64_t>(stride_) == 0;
        if (!due_) return;
        budget_ = per_read_;
        for (Resolved& r : resolved_) r.key = 0;  // a code object may be gone by the next tick
        for (Resumes& r : resumes_) r.instr = 0;
    }
    // Starts on the tasks of the thread at `ts_addr`, position `i` of the tick's list, at the tick
    // of time `t_ns`. `quiet`: it has not run since the last tick, so its list, which only it
    // adds to, is not read again when it was empty (and not since the last tick that read it).
    void begin_thread(size_t i, uint64_t ts_addr, uint64_t t_ns, bool quiet);
    // The next suspended task of that thread: its frames and task records in `frames` (room for
    // max_depth + kTaskCells), their number in `depth`, the sample's weight in `weight`. False
    // when the thread has no more tasks this tick.
    bool next(FrameRecord* frames, int& depth, uint64_t& weight);

    uint64_t sampled() const { return sampled_.load(std::memory_order_relaxed); }
    uint64_t left_out() const { return left_out_.load(std::memory_order_relaxed); }
    uint64_t rejected() const { return rejected_.load(std::memory_order_relaxed); }

private:
    // Where a thread's list was left, by thread_slot(); a slot taken by another thread starts over.
    struct Cursor {
        uint64_t tstate = 0;
        uint64_t node = 0;            // the next node to read; 0: the list's first (sets: index + 1)
        uint64_t table = 0;           // sets: the table the pass reads
        uint64_t pass_start_ns = 0;   // when the pass under way started (the last one ended)
        uint64_t last_pass_ns = 0;    // how long the last whole pass took; 0: none yet
        uint32_t ticks = 0, last_ticks = 0;   // ticks of the pass under way, of the last one
        uint32_t count = 0, last_count = 0;   // tasks met by the pass under way, by the last one
        uint32_t hops = 0;            // nodes followed by the pass under way
    };
    // One task of the batch under way.
    struct Pending {
        uint64_t task, coro, name, obj;  // obj: the object its chain reads next
        uint64_t by;                     // what awaits it (a task, a set of them), from its copy
        int n;                           // coroutines read so far
        bool open, ok;                   // open: its chain goes on; ok: it is to be sampled
        size_t len;                      // of its name's text
        uint64_t cb0, waiter;            // 3.9-3.13: its first done-callback, the future it awaits
    };
    // A chain resolved at this tick: tasks waiting at the same instructions of the same code
    // objects share their frames but for the frames' addresses.
    struct Resolved { uint64_t key = 0; int n = 0; uint64_t code[kCachedChain], instr[kCachedChain];
                      FrameRecord records[kCachedChain]; };
    void end_pass(uint64_t t_ns);
    bool leave_for_next_tick(Cursor& c, uint64_t node);
    bool fill_batch();
    bool fill_batch_from_set();
    void take(uint64_t task, const uint8_t* copy);
    bool list_task(Cursor& c, uint64_t& task, uint8_t* copy);
    void read_ahead();
    void read_chains();
    void read_level(size_t* which, size_t m, bool with_names);
    // One coroutine of a chain as read: its frame and whether (and where) it awaits.
    struct Level {
        bool suspended = false, created = false, awaits = false;
        int state = 0;                 // as read again at the end (state_at_)
        uint64_t code = 0, instr = 0, frame = 0;
        uint64_t instr_word = 0;       // as read again at the end (instr_at_)
        uint64_t recheck = 0;          // where those two are read again from
        uint64_t top = 0;              // awaits: where the awaited object's address lies
        const uint8_t* copy = nullptr; // the copy `top` may lie in, of copy_len bytes at copy_at
        uint64_t copy_at = 0;
        size_t copy_len = 0;
    };
    bool interpreter_level(size_t b, const uint8_t* w, size_t got, Level& v);
    void read_frame_objects(const size_t* which, size_t m, const size_t* got);
    size_t read_window(uint64_t addr, uint8_t* out, size_t head, size_t total);
    bool frame_object_level(size_t b, const uint8_t* w, size_t got, bool generator, Level& v);
    bool yields_from(uint64_t code, uint64_t instr);
    bool resumes_from_await(uint64_t instr);
    bool recheck_range(size_t from, size_t to, size_t k);
    bool resolve(const Walked* walked, int n, FrameRecord* frames);
    int sample(size_t b, FrameRecord* frames);
    Walked* chain(size_t b) { return chain_.data() + b * kAwaitChain; }
    void reject() { rejected_.fetch_add(1, std::memory_order_relaxed); }

    const spprof_layout& L;
    SafeReader& reader_;
    AsyncioTasks& tasks_;
    FrameCapture& capture_;
    TaskSets sets_;
    const int max_depth_;
    const uint32_t coro_bytes_;   // of a coroutine read for its frame's fields (3.9/3.10: gi_frame)
    const bool objects_;          // 3.9/3.10: a coroutine's frame is a frame object of its own
    const size_t window_;         // those and the bytes after them, where its stack top usually is
    const size_t frame_window_;   // 3.9/3.10: of a frame object, with its stack's usual place
    const uint32_t state_at_, instr_at_;  // a coroutine's state and instruction, read again at the end
    std::vector<Cursor> cursors_;
    std::vector<uint64_t> empty_;  // by position: the thread state whose list was empty when read
    std::vector<Pending> batch_;
    std::vector<uint8_t> tasks_copy_, windows_, frame_windows_;
    size_t frame_got_[kTaskBatch] = {};
    std::vector<Walked> chain_;      // kAwaitChain per task of the batch, outermost first
    std::vector<uint64_t> coros_;    // where their states are read again: the coroutine (3.9/3.10: its frame)
    std::vector<int64_t> seen_;      // each coroutine's state and instruction, read again at the end
    std::vector<char> names_;        // kTaskNameBytes per task
    std::vector<uint8_t> name_copies_;  // kTaskNameCopy bytes of each task's name object
    std::vector<uint8_t> names_again_;  // the same, read again with the chain's recheck
    std::vector<struct iovec> local_, remote_;
    std::vector<Resolved> resolved_;
    // 3.11/3.12: whether the instruction after one a frame is suspended at resumes from an await,
    // for this tick, direct-mapped.
    static constexpr size_t kResumes = 32;
    struct Resumes { uint64_t instr = 0; bool awaits = false; };
    Resumes resumes_[kResumes];
    std::vector<uint8_t> re_states_;
    std::vector<uint64_t> re_words_;
    std::vector<Walked> walked_;
    // 3.14: a thread's list as its last pass met it, node by place, overwritten by the pass under
    // way as it goes (places from `hops` on are the last pass's); n: the last pass's length.
    struct Forecast { uint64_t tstate = 0; uint32_t n = 0; std::vector<uint64_t> nodes; };
    std::vector<Forecast> forecasts_;
    Forecast* fc_ = nullptr;           // the thread under way's
    std::vector<uint8_t> ahead_copies_;
    uint64_t ahead_nodes_[kTaskBatch] = {};
    uint32_t ahead_at_ = 0;            // the place of the first node read ahead
    size_t ahead_n_ = 0;
    size_t batch_n_ = 0, emit_ = 0;
    const int stride_, per_read_;
    int budget_ = 0;
    bool due_ = true;              // this tick reads tasks
    uint64_t ticks_ = 0;
    uint64_t since_read_ns_ = 0;   // the time since the last tick that read tasks
    size_t listed_ = 0;            // the last tick's thread list's length
    // the thread under way
    Cursor* cur_ = nullptr;
    uint64_t head_ = 0, first_ = 0, running_ = 0, t_ns_ = 0, weight_ = 0, next_ = 0;
    bool names_copied_ = false;  // the batch's names were read with its first level
    uint64_t loop_ = 0;     // sets: the loop the thread runs
    bool resumed_ = false;  // next_ is where the last tick stopped, not yet read again
    std::atomic<uint64_t> sampled_{0}, left_out_{0}, rejected_{0};
};

}  // namespace spprof
