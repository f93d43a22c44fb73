// Wall mode: each thread's last stack, recorded again without a walk while the thread has not
// run since it was taken.
//
// A thread that has not run cannot have changed its frames. Two proofs, the free one first:
// - the GIL's count of holder changes is what it was when the stack was taken, and the thread is
//   not the GIL's last holder: then no thread but that holder ran Python code in between;
// - the thread's CPU clock is what it was just before the stack was taken.
// A thread the GIL cannot vouch for pays one clock read, and a walk only when its clock moved.
//
// Safety contract: runs on the sampler thread only, without the GIL. Its buffers are sized at
// construction and grow between samples: the thread table in begin_tick(), the frame pool when
// the stacks held hold more frames than it ever has (amortised doubling, never per sample).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "sample_queue.h"
#include "thread_list.h"

namespace spprof {

class LastStacks {
public:
    explicit LastStacks(size_t initial_threads);

    // What is kept of a thread: its last stack (`has_stack`: false when its last walk was torn,
    // or it was never walked) and when it was last sampled.
    struct Entry {
        uint64_t tstate = 0, ident = 0;
        uint32_t tid = 0;
        bool has_stack = false, truncated = false, clock_known = false, switches_known = false;
        uint16_t depth = 0;
        uint32_t offset = 0;     // of its frames in the pool
        uint64_t switches = 0;   // the GIL's count when the stack was taken
        uint64_t cpu_ns = 0;     // its CPU clock read just before, when clock_known
        uint64_t t_ns = 0;       // the tick that last sampled it
    };

    // After enumerate(): starts a tick over `threads` threads with the GIL as the list copied it
    // (`gil_known` false when it was not copied).
    void begin_tick(size_t threads, bool gil_known, uint64_t switches, uint64_t last_holder);
    // Thread i of this tick, what was kept of it, or null for a thread not seen before.
    const Entry* previous(size_t i, const ThreadSeen& t);
    // Whether thread i (`before` its entry) has not run since its stack was taken. May read its
    // clock, which record() then keeps.
    bool unchanged(const Entry* before, const ThreadSeen& t);
    const FrameRecord* frames(const Entry& e) const { return prev_frames_.data() + e.offset; }
    // Thread i is recorded again with its kept stack, sampled at t_ns. True when its state need
    // not be copied at the next tick: it waits, and the GIL's last holder (the one thread that
    // may run Python code unseen) is another.
    bool reuse(size_t i, const Entry& before, uint64_t t_ns);
    // Thread i was walked at t_ns (`depth` 0: it had no Python frame); `frames` null: the walk
    // was torn and no stack is kept.
    void record(size_t i, const ThreadSeen& t, const FrameRecord* frames, int depth, bool truncated, uint64_t t_ns);
    void end_tick();       // this tick's entries become those the next tick compares with
    void keep_previous() { ncur_ = 0; }  // a skipped tick keeps the last ones

private:
    const Entry* find(uint64_t tstate, uint64_t ident);
    Entry& slot(size_t i) { return cur_[i]; }
    uint32_t append(const FrameRecord* frames, int depth);
    std::vector<Entry> prev_, cur_;
    std::vector<FrameRecord> prev_frames_, cur_frames_;
    size_t nprev_ = 0, ncur_ = 0, used_ = 0;
    std::vector<uint32_t> index_;  // prev_ by thread state, open addressing, built on a first miss
    bool indexed_ = false;
    bool gil_known_ = false;
    uint64_t switches_ = 0, holder_ = 0;
    uint64_t clock_ns_ = 0;  // the clock unchanged() read, for record()
    bool clock_read_ = false;
};

}  // namespace spprof
