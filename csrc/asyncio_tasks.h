// The asyncio task a thread is running, named on its sample.
//
// A thread runs a task while the task's coroutine's frame is on its stack. The running tasks are
// found in the interpreter's own records (3.9-3.13: _asyncio's dict of each loop's running task;
// 3.14: the thread state's running task); a task is named on a thread's sample only when its
// coroutine's frame is among the frames that sample walked, its type is asyncio's Task or a class
// made from it, its name is a str (or, 3.12+, the number a default name is made from), and the
// record that said it runs still says so after its name was copied, or, once the loop has gone on
// to another task since the walk, the task named lately with that coroutine still holds it and
// its name (owners_). Anything else leaves the sample unnamed and is counted.
//
// Safety contract: runs on the sampler thread only, without the GIL; every read goes through the
// sampler's SafeReader; nothing is allocated after construction.
//
// On a sample, a task is one record put between its coroutine's frame and the frame that called
// it: a head cell (code: the task's address, instr_bytes: kTaskRecord, fingerprint: the name's
// length in bytes) and, before it (toward the innermost frame), the name's UTF-8 bytes in
// kTaskNameCells cells or fewer. On 3.14, the tasks awaiting it (through `await task`, gather,
// TaskGroup, shield, wait) follow as records of their own, up to kTaskParents, each checked like
// the running one and its link read again after its name; a task awaited by several tasks at
// once (a set) ends the chain there. 3.9-3.13 keep no such link: the awaiting task is found from
// the first callback the awaited task will run when done (the awaiter's wakeup, or the callback
// of a gather, TaskGroup, shield, wait or wait_for, which holds the future the awaiter waits on),
// and taken only when that task's own record says it awaits that task or future. Anything else
// ends the chain.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "bytes.h"
#include "layout.h"
#include "safe_read.h"
#include "sample_queue.h"

namespace spprof {

constexpr int64_t kTaskRecord = INT64_MIN + 0x7a5c;  // no instruction offset is ever this
constexpr size_t kTaskNameBytes = 64;               // a longer name is cut, at a character
constexpr int kTaskNameCells = static_cast<int>(kTaskNameBytes / sizeof(FrameRecord));
constexpr int kTaskParents = 4;                     // tasks awaiting the running one, named above it
constexpr size_t kTaskNameCopy = 128;               // bytes of a name object that hold a short name
constexpr int kTaskCells = (1 + kTaskParents) * (1 + kTaskNameCells);  // the most tasks add to a sample

// The cells before a task's record that hold its name of `len` bytes.
constexpr size_t task_name_cells(uint64_t len) { return (len + sizeof(FrameRecord) - 1) / sizeof(FrameRecord); }

// What name_awaiting() put, level by level, for a caller that keeps the records it made: one
// read shows later whether they still hold (awaiting_holds()).
struct AwaitChain {
    // 3.9-3.13: `future`, what the level's task awaits (the task below it, or a future they
    // share); `callback`, its own first done-callback, which leads to the next level (or to none)
    struct Level { uint64_t task, type, coro, name; size_t len; char text[kTaskNameBytes]; uint64_t future, callback; };
    int n = 0;
    uint64_t end = 0;    // the last level's link, which ended the chain (none when n == kTaskParents)
    bool whole = false;  // it ended at a task awaited by none (or by itself), or at kTaskParents
    Level level[kTaskParents];
};

class AsyncioTasks {
public:
    AsyncioTasks(const spprof_layout& layout, SafeReader& reader);
    bool enabled() const { return L.tasks_model != SPPROF_TASKS_OFF; }
    // At the start of each tick: the running tasks are read again when a thread first needs them.
    void begin_tick() {
        loaded_ = false;
        ++tick_;
    }
    // `frames` holds `depth` frames, innermost first, each with its frame's address, and room for
    // kTaskCells more. Puts the record of the task the thread at `ts_addr` runs after its
    // coroutine's frame and returns the new depth; the same depth when it runs none, or when its
    // task could not be verified.
    int name_running(uint64_t ts_addr, FrameRecord* frames, int depth);

    // A task of the thread's loop read suspended, with its coroutine's frame (wall mode's reads):
    // kept by that frame for the walks that meet it running, where no task is kept there yet.
    void saw_suspended(uint64_t frame, uint64_t task) {
        Owner& o = owner_slot(frame);
        if (o.frame == 0) o = {frame, task};
    }

    uint64_t named() const { return named_.load(std::memory_order_relaxed); }
    uint64_t parents_named() const { return parents_named_.load(std::memory_order_relaxed); }
    uint64_t rejected() const { return rejected_.load(std::memory_order_relaxed); }

private:
    friend class WaitingTasks;  // a suspended task is read and named like a running one
    // cb0, waiter: 3.9-3.13, the task's first done-callback and the future it awaits;
    // by: 3.14, the task (or set of tasks) awaiting it
    struct Running { uint64_t task, frame, name, coro, entry, type, cb0, waiter, by; };
    // The records of the tasks awaiting a task (running or suspended), by the first of them, for
    // every task that one awaits (a gather's, a TaskGroup's children): used again at the tick
    // they were made, and at later ticks once awaiting_holds() says they still hold (`whole`).
    // levels: the awaiting tasks named in them.
    struct KeptAwaiters { uint64_t by = 0, tick = 0; int n = 0; uint64_t levels = 0; bool whole = false;
                          AwaitChain chain; FrameRecord cells[kTaskCells]; };
    static constexpr size_t kKept = 8;
    // The records kept of the tasks awaiting one, the first of them `by` (3.9-3.13: awaiting
    // `future`), when they still hold; nullptr when none are.
    const KeptAwaiters* kept_awaiters(uint64_t by, uint64_t future);
    // Keeps the `n` cells of the records `chain` made, the first awaiting task `by`.
    void keep_awaiters(uint64_t by, const AwaitChain& chain, const FrameRecord* cells, int n, uint64_t levels);
    // 3.9-3.13: that the callback `via` of a task leads to `future`, which `task` awaits; kept
    // for the next samples, which check the last link again in the awaiter's own copy
    // type, holder: what the callback at `via` was (its type, and its closure, args, self or task):
    // an object freed and another made at its address is told apart by one read
    struct Link { uint64_t via, future, task; bool direct; uint64_t checked, type, holder; };
    // Whether a callback leads to an awaiter: found; never (no callback, or one of no shape that
    // can: not a wakeup, closure, partial or TaskGroup method, or a function without a closure);
    // not now (not yet, or a read failed)
    enum class Follow { Found, Never, NotNow };
    static constexpr size_t kLinks = 64;
    bool load_from_dict();
    bool read_task(uint64_t task, Running& out);
    bool is_task_type(uint64_t type);
    size_t coro_bytes() const;  // of a coroutine, read for its type and frame
    bool task_from(uint64_t task, const uint8_t* t, const uint8_t* c, Running& out);
    // `running`: the record that said the task runs must still say so; false for a task found by
    // its coroutine's frame in the walk (owners_), which needs only to still hold that coroutine.
    size_t name_confirmed(const Running& r, uint64_t ts_addr, char* name, Running& again, bool running = true);
    // The tasks named or seen running lately (in wall mode: or read suspended, into free slots),
    // by their coroutine's frame. The running task's record is read after the walk, and an event
    // loop of short steps has gone on to another task by then (50 tasks of 15 us steps: 84-86 % of
    // the work's samples named on 3.9/3.10, 18-32 % on 3.14): a walk that met a coroutine's frame
    // no record names now is named by the task that held that coroutine.
    struct Owner { uint64_t frame = 0, task = 0; };
    static constexpr size_t kOwners = 1024;
    std::vector<Owner> owners_;
    Owner& owner_slot(uint64_t frame) { return owners_[mix64(0, frame) % kOwners]; }
    int name_owner(uint64_t ts_addr, FrameRecord* frames, int depth);
    // `may_read`: false to give up (0) where `pre` does not hold the whole name
    size_t copy_name(uint64_t name, char* out, const uint8_t* pre = nullptr, size_t pre_len = 0, bool may_read = true);
    int match(uint64_t ts_addr, FrameRecord* frames, int depth, const Running* candidates, size_t n, bool reload);
    int insert(FrameRecord* frames, int depth, int at, uint64_t task, const char* name, size_t len);
    int name_awaiting(uint64_t task, FrameRecord* frames, int depth, int head, AwaitChain* chain = nullptr);
    // The running task's awaiters after its record at `head`: as kept, or named and kept.
    int name_awaiters(const Running& task, FrameRecord* frames, int depth, int head);
    // 3.9-3.13: name_awaiting() for the task `awaited`, as read
    int name_awaiting_by_callbacks(Running cur, FrameRecord* frames, int depth, int head, AwaitChain* chain = nullptr);
    // The task awaiting `awaited` and the future it awaits there (the task itself, or one a gather,
    // TaskGroup, shield, wait or wait_for made), checked in the awaiter's copy `out`; false when
    // none is found.
    Follow awaiter_of(const Running& awaited, Running& out, uint64_t& future);
    // From the callback `via`: the wakeup of the task that awaits `awaited` itself, or a closure,
    // a functools.partial or a TaskGroup's bound method that holds the `future` the task awaits.
    Follow follow_callback(uint64_t via, uint64_t awaited, uint64_t& task, uint64_t& future, uint64_t& type,
                           uint64_t& holder);
    // The task that the first callback `cb0` of the task `task` led to before, and the future it
    // awaited there; 0 when none is kept, or the callback is another object now. Whether that
    // task still awaits the future is for awaiting_holds() to say. `none`: it has no callback.
    uint64_t awaiter_kept(uint64_t cb0, uint64_t task, uint64_t& future, bool& none);
    // The link's callback is the object it was (read once a tick).
    bool link_holds(Link& c);
    // A callback's type and what it holds (see Link), read in one copy of its head; whether it
    // is a task's wakeup.
    enum class Shape { Unread, None, Known };
    Shape callback_shape(uint64_t via, uint64_t& type, uint64_t& holder, bool& wakeup);
    bool wakeup_task(uint64_t callback, uint64_t& task);
    // 3.11-3.13: the first kGroupValues values of an object's attributes (a TaskGroup's).
    bool group_values(uint64_t obj, uint8_t* out);
    // The task whose wakeup is among the first callbacks of the future `fut`.
    bool waits_on(uint64_t fut, uint64_t& task);
    bool is_future_type(uint64_t type);
    // Whether each level of `chain` still is: its task of the same type, with the same coroutine
    // and name, the name's text the same, linked to the next level (or to the same end; 3.9-3.13:
    // awaiting the same future, with the same first callback). One read.
    bool awaiting_holds(const AwaitChain& chain);
    void reject() { rejected_.fetch_add(1, std::memory_order_relaxed); }

    const spprof_layout& L;
    SafeReader& reader_;
    bool loaded_ = false;
    std::vector<Running> running_;  // 3.9-3.13: this tick's running tasks, one per loop
    size_t n_running_ = 0;
    uint64_t keys_ = 0;             // the dict's keys the entries were read from
    std::vector<uint8_t> buf_;
    std::vector<uint8_t> held_;     // awaiting_holds(): each level's task, then its name's start
    Link links_[kLinks] = {};
    KeptAwaiters kept_[kKept];
    uint64_t tick_ = 0;
    std::atomic<uint64_t> named_{0}, rejected_{0}, parents_named_{0};
};

}  // namespace spprof
