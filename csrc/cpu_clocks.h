// The CPU time each thread used between two ticks.
//
// Safety contract: runs on the sampler thread only, without the GIL; its buffers are sized at
// construction and grow in begin_tick(), between samples. skipped() and full_reads() may be
// read from any thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace spprof {

// From the kernel's per-thread clock. A clock read is a system call, and most threads of a large
// application wait: with kGateThreads threads or
// more, the clock of a thread is left unread while three things hold: it did not advance at its
// last kIdleTicks reads, the thread's frame pointers are as at the previous tick, and it does not
// hold the GIL. Its CPU is not lost: the process's CPU clock, less the clocks that were read and
// the sampler's own, is what the unread threads (and any thread Python does not know) used, and
// once that passes a quarter of an interval (more when the sampler was held up between its reads
// of the clocks, see end_tick()) every clock is read at the next tick. With 256
// threads or more the process's clock is read every few ticks (up to 8), not at every tick.
class CpuClocks {
public:
    CpuClocks(size_t initial_threads, uint64_t interval_ns);
    static constexpr size_t kGateThreads = 8;
    static constexpr uint8_t kIdleTicks = 2;

    // Called on the thread that observes, before its observe() calls; `baseline` when the calls
    // only set where the next tick counts from. Grows the buffers to `threads` if they are smaller.
    // `same_list`: every thread is at its position of the last tick, whose entries are then
    // updated in place, so a thread this tick does not observe keeps its entry untouched.
    void begin_tick(size_t threads, bool baseline = false, bool same_list = false);
    // Whether this tick leaves idle clocks unread. Then a thread whose clock observe() would leave
    // unread (idle, not holding the GIL, its activity as at its last observe()) need not be
    // observed at all when the list is the same: skip() counts those.
    bool gating() const { return gate_ && in_place_; }
    void skip(size_t threads) { skipped_now_ += threads; }
    // The CPU time of (tstate, tid), thread `i` of this tick's list, since it was last observed.
    // A thread not seen before counts from its start when `count_new` (it began after the
    // previous tick), else it only sets a baseline. `activity` is what of its thread state
    // changes when it calls or returns. Returns false when the clock cannot be read (the thread
    // has exited).
    bool observe(size_t i, uint64_t tstate, uint32_t tid, uint64_t activity, bool holds_gil, bool count_new,
                 uint64_t& delta_ns);
    // After observe(i): whether thread i's clock will be left unread at the next tick unless it
    // holds the GIL or its activity changed, as long as gating_next() holds after end_tick().
    // Its thread state then need not be copied either.
    bool idle(size_t i) const {
        const std::vector<Entry>& e = in_place_ ? prev_ : cur_;
        return i < ncur_ && e[i].tid != 0 && e[i].idle >= kIdleTicks;
    }
    bool gating_next() const { return have_base_ && !read_all_ && nprev_ >= kGateThreads; }
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
    bool in_place_ = false;  // this tick's entries are prev_'s, updated where they are
    size_t nprev_ = 0, ncur_ = 0;
    const uint64_t threshold_ns_;
    const size_t cpus_;
    bool gating_ = false, gate_ = false, read_all_ = false, have_base_ = false;
    uint64_t process_ns_ = 0, own_ns_ = 0, process_prev_ = 0, own_prev_ = 0;
    uint64_t read_ns_ = 0;      // CPU of the clocks read this tick
    uint64_t read_since_ = 0;   // ... and since the process's clock was last read
    size_t ticks_since_ = 0;    // ticks since then
    size_t skipped_now_ = 0;
    size_t reads_now_ = 0;             // clocks read this tick, the first at first_read_wall_ns_
    uint64_t first_read_wall_ns_ = 0;
    int64_t unread_ns_ = 0;     // CPU the process used that no read clock accounts for
    std::atomic<uint64_t> skipped_total_{0}, full_reads_{0};
};

}  // namespace spprof
