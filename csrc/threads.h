// Thread enumeration and per-thread CPU clocks.
//
// Safety contract: ThreadList and CpuClocks run on the sampler thread only, without the GIL, and
// read interpreter memory only through SafeReader; their buffers are sized at construction and
// grow there, between samples, when the process has more threads than they hold.
// NativeIds is written by Python code holding the GIL and read lock-free by the sampler.
#pragma once

#include <sys/uio.h>
#include <time.h>

#include <atomic>
#include <cstdint>
#include <vector>

#include "layout.h"
#include "safe_read.h"

namespace spprof {

// ident -> native thread id, for 3.9/3.10 whose thread states carry no native id. Written by
// Python code holding the GIL (one writer at a time), read lock-free by the sampler.
//
// Open addressing in a window of kProbe slots from the ident's hash: an ident goes to the first
// empty slot of its window, else in place of a thread that has exited (its tid is no longer a
// thread of this process); when every slot of the window holds a live thread it is not stored,
// and counted. An ident reused by a new thread overwrites its tid. Slots are never emptied, so a
// lookup stops at the first empty one and never reads more than kProbe. A slot's sequence number
// is odd while it is written: a reader never pairs one thread's ident with another's tid.
class NativeIds {
public:
    static constexpr size_t kSlots = 32768;  // a power of two
    static constexpr size_t kProbe = 32;
    void put(uint64_t ident, uint32_t tid);
    uint32_t get(uint64_t ident) const;
    uint64_t not_stored() const { return not_stored_.load(std::memory_order_relaxed); }
    uint64_t evicted() const { return evicted_.load(std::memory_order_relaxed); }

private:
    struct Slot { std::atomic<uint32_t> seq{0}; std::atomic<uint32_t> tid{0}; std::atomic<uint64_t> ident{0}; };
    static void write(Slot& s, uint64_t ident, uint32_t tid);
    Slot slots_[kSlots];
    std::atomic<uint64_t> not_stored_{0}, evicted_{0};
};

struct ThreadSeen {
    uint64_t tstate;
    uint64_t ident;
    uint32_t tid;           // 0 while the OS thread has not started or is unknown
    uint64_t activity;      // its frame pointers: they change when it calls or returns
    const uint8_t* copy;    // the copied thread state
};

class ThreadList {
public:
    // Room for `initial` thread states, doubled when a walk finds more, up to `bound`.
    ThreadList(const spprof_layout& layout, SafeReader& reader, const NativeIds& ids, size_t initial, size_t bound);
    // Copies every thread state of the interpreter. False when the list changed under the walk
    // (a pointer failed a check, or a thread state came twice: one freed and reused as the new
    // head can link the copies into a loop); the caller then skips the tick.
    bool enumerate();
    // Copies thread i's state again, for a walk to retry on fresher data, or for a thread whose
    // copy was left stale. When that fails, the next enumerate() copies every thread state.
    bool refresh(size_t i);
    // Thread i of the current list need not be copied at the next enumerate(): its copy stays
    // the last one. Each page copied costs the kernel a page pin, and in a server of many
    // waiting threads those pins were most of a tick. The marks last one enumerate().
    void leave_stale(size_t i) { if (i < count_) stale_ok_[i] = 1; }
    // Whether thread i's copy was taken by the last enumerate() or a refresh() since.
    bool fresh(size_t i) const { return fresh_[i] != 0; }
    size_t size() const { return count_; }
    const ThreadSeen& operator[](size_t i) const { return seen_[i]; }
    // The last enumerate() stopped at `bound` thread states: the oldest threads were left out.
    bool overflowed() const { return overflowed_; }
    size_t capacity() const { return max_; }
    // The thread state that held the GIL when the list was copied, 0 when it was free or not read.
    // That thread was running Python code, not waiting in a system call.
    uint64_t gil_holder() const { return gil_holder_; }

private:
    // Even with marks, every thread state is copied this often: a thread that exits between
    // two uncopied neighbours is noticed then, and its stale entry dropped.
    static constexpr unsigned kCopyAllEvery = 16;

    bool enumerate_as_before();
    void record(size_t i, uint64_t ts);
    void grow();
    // Thread states of this walk, to catch one seen twice: open addressing, cleared by epoch.
    bool first_visit(uint64_t ts);
    void forget_visits();

    const spprof_layout& L;
    SafeReader& reader_;
    const NativeIds& ids_;
    size_t max_;
    const size_t bound_;
    std::vector<uint8_t> copies_;
    std::vector<uint8_t> gil_;
    uint64_t gil_holder_ = 0;
    std::vector<ThreadSeen> seen_;
    std::vector<uint8_t> stale_ok_, fresh_;
    unsigned since_all_ = 0;
    std::vector<struct iovec> iov_local_, iov_remote_;
    size_t count_ = 0;
    bool overflowed_ = false;
    std::vector<uint64_t> visited_;
    std::vector<uint32_t> visited_epoch_;
    uint32_t epoch_ = 0;
};

// CPU time each thread used since the previous tick, from the kernel's per-thread clock.
//
// A clock read is a system call, and in an application of many threads, most of them waiting,
// reading every clock at every tick was most of the sampler's cost. With kGateThreads threads or
// more, the clock of a thread is left unread while three things hold: it did not advance at its
// last kIdleTicks reads, the thread's frame pointers are as at the previous tick, and it does not
// hold the GIL. Its CPU is not lost: the process's CPU clock, less the clocks that were read and
// the sampler's own, is what the unread threads (and any thread Python does not know) used, and
// once that passes a quarter of an interval every clock is read at the next tick.
class CpuClocks {
public:
    static constexpr size_t kGateThreads = 8;
    static constexpr uint8_t kIdleTicks = 2;

    CpuClocks(size_t initial_threads, uint64_t interval_ns);
    // Called on the thread that observes, before its observe() calls; `baseline` when the calls
    // only set where the next tick counts from. Grows the buffers to `threads` if they are smaller.
    void begin_tick(size_t threads, bool baseline = false);
    // The CPU time of (tstate, tid), thread `i` of this tick's list, since it was last observed.
    // A thread not seen before counts from its start when `count_new` (it began after the
    // previous tick), else it only sets a baseline. `activity` is what of its thread state
    // changes when it calls or returns. Returns false when the clock cannot be read (the thread
    // has exited).
    bool observe(size_t i, uint64_t tstate, uint32_t tid, uint64_t activity, bool holds_gil, bool count_new,
                 uint64_t& delta_ns);
    // Before begin_tick: whether thread i of the previous tick's list, if it is still
    // (tstate, tid), will have its clock left unread unless it holds the GIL or its activity
    // changed. Its thread state then need not be copied either.
    bool quiet(size_t i, uint64_t tstate, uint32_t tid) const;
    void end_tick();       // what was observed becomes the baseline of the next tick
    void keep_previous();  // a skipped tick keeps the old baseline
    uint64_t skipped() const { return skipped_total_.load(std::memory_order_relaxed); }
    uint64_t full_reads() const { return full_reads_.load(std::memory_order_relaxed); }

private:
    // By position in the thread list, which rarely changes: found at its own position, a thread
    // needs no search. tid 0 marks a position with no clock.
    struct Entry { uint32_t tid; uint64_t tstate; uint64_t cpu_ns; uint64_t activity; uint8_t idle; };
    const Entry* previous(size_t i, uint64_t tstate, uint32_t tid);
    std::vector<Entry> prev_, cur_;
    std::vector<uint32_t> order_;  // positions of prev_ by (tid, tstate), sorted once a thread moved
    bool ordered_ = false;
    size_t nprev_ = 0, ncur_ = 0;
    const uint64_t threshold_ns_;
    bool gating_ = false, gate_ = false, read_all_ = false, have_base_ = false;
    uint64_t process_ns_ = 0, own_ns_ = 0, process_prev_ = 0, own_prev_ = 0;
    uint64_t read_ns_ = 0;      // CPU of the clocks read this tick
    size_t skipped_now_ = 0;
    int64_t unread_ns_ = 0;     // CPU the process used that no read clock accounts for
    std::atomic<uint64_t> skipped_total_{0}, full_reads_{0};
};

// A kernel clock in nanoseconds; `ok` false (and 0) when it cannot be read.
uint64_t clock_ns(clockid_t id, bool& ok);
inline uint64_t clock_ns(clockid_t id) {
    bool ok;
    return clock_ns(id, ok);
}
uint64_t thread_cpu_ns(uint32_t tid, bool& ok);

// The CPU time one of spprof's own threads has used, readable from any thread while that thread
// runs (through its tid, so the thread spends no system call on it) and after it has ended.
class OwnThreadCpu {
public:
    void begin();  // first thing on the thread
    void end();    // last thing on the thread
    uint64_t ns() const;

private:
    std::atomic<uint32_t> tid_{0};
    std::atomic<uint64_t> final_ns_{0};
};
// Whether a thread waits in a system call other than futex now (asleep, polling, reading), from
// the kernel's /proc/self/task/TID/syscall. A futex wait is the GIL's or a lock's, and a thread
// that runs or cannot be read counts as not blocked. The files of up to kMaxFiles threads stay
// open, so a read costs one pread instead of open, read and close. When descriptors run short
// (EMFILE or ENFILE, or a number within 64 of the soft limit) they are all given up and the next
// kShortReads reads take none (those threads count as running). A number is closed only while
// it still holds the file opened (the program may have closed it and reused it).
class ThreadStates {
public:
    static constexpr size_t kMaxFiles = 16;
    static constexpr unsigned kShortReads = 10000;
    explicit ThreadStates(size_t slots);
    ~ThreadStates() { close_all(); }
    ThreadStates(const ThreadStates&) = delete;
    ThreadStates& operator=(const ThreadStates&) = delete;
    bool blocked(size_t slot, uint32_t tid);
    void close_all();

private:
    struct File { uint32_t tid = 0; int fd = -1; uint64_t dev = 0, ino = 0; };
    void close_file(File& f);
    bool open_file(File& f, uint32_t tid);
    std::vector<File> files_;
    unsigned short_reads_ = 0;  // reads left that open nothing, after a shortage
};

}  // namespace spprof
