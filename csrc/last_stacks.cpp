#include "last_stacks.h"

#include <algorithm>
#include <utility>

#include "bytes.h"
#include "kernel_clock.h"

namespace spprof {

namespace {
constexpr uint32_t kNoEntry = 0xFFFFFFFFu;
constexpr size_t kFramesPerThread = 16;  // the pool's first size, per thread of the first buffers
}  // namespace

LastStacks::LastStacks(size_t initial_threads)
    : prev_(initial_threads), cur_(initial_threads),
      prev_frames_(initial_threads * kFramesPerThread), cur_frames_(initial_threads * kFramesPerThread) {}

void LastStacks::begin_tick(size_t threads, bool gil_known, uint64_t switches, uint64_t last_holder) {
    if (threads > cur_.size()) {  // as the thread list grew; prev_ keeps what it holds
        const size_t n = std::max(threads, 2 * cur_.size());
        prev_.resize(n);
        cur_.resize(n);
    }
    ncur_ = threads;
    // a thread this tick leaves unrecorded (gone, unidentified) has no entry
    for (size_t i = 0; i < threads; ++i) cur_[i].tstate = 0;
    used_ = 0;
    indexed_ = false;
    gil_known_ = gil_known;
    switches_ = switches;
    holder_ = gil_known ? last_holder : 0;
}

const LastStacks::Entry* LastStacks::find(uint64_t tstate, uint64_t ident) {
    // The list usually keeps its order: found at its own position, a thread needs no search.
    // Otherwise (a thread came or went) by thread state, from an index built once a tick.
    const size_t mask = index_.size() - 1;
    if (!indexed_) {
        size_t slots = 16;
        while (slots < 2 * nprev_) slots *= 2;
        index_.assign(slots, kNoEntry);
        const size_t m = slots - 1;
        for (size_t p = 0; p < nprev_; ++p) {
            if (prev_[p].tstate == 0) continue;
            size_t s = static_cast<size_t>(mix64(0, prev_[p].tstate)) & m;
            while (index_[s] != kNoEntry) s = (s + 1) & m;
            index_[s] = static_cast<uint32_t>(p);
        }
        indexed_ = true;
        return find(tstate, ident);
    }
    for (size_t s = static_cast<size_t>(mix64(0, tstate)) & mask; index_[s] != kNoEntry; s = (s + 1) & mask) {
        const Entry& e = prev_[index_[s]];
        if (e.tstate == tstate && e.ident == ident) return &e;
    }
    return nullptr;
}

const LastStacks::Entry* LastStacks::previous(size_t i, const ThreadSeen& t) {
    if (i < nprev_ && prev_[i].tstate == t.tstate && prev_[i].ident == t.ident) return &prev_[i];
    return nprev_ == 0 ? nullptr : find(t.tstate, t.ident);
}

bool LastStacks::unchanged(const Entry* before, const ThreadSeen& t) {
    clock_read_ = false;
    const bool kept = before != nullptr && before->has_stack;
    if (kept && gil_known_ && before->switches_known && before->switches == switches_ && t.tstate != holder_)
        return true;
    if (t.tid == 0) return false;
    bool ok;
    const uint64_t now = thread_cpu_ns(t.tid, ok);
    if (!ok) return false;
    clock_ns_ = now;
    clock_read_ = true;
    return kept && before->clock_known && before->tid == t.tid && before->cpu_ns == now;
}

uint32_t LastStacks::append(const FrameRecord* frames, int depth) {
    const size_t n = static_cast<size_t>(depth);
    if (used_ + n > cur_frames_.size()) cur_frames_.resize(std::max(used_ + n, 2 * cur_frames_.size()));
    std::copy(frames, frames + n, cur_frames_.begin() + static_cast<long>(used_));
    const uint32_t at = static_cast<uint32_t>(used_);
    used_ += n;
    return at;
}

bool LastStacks::reuse(size_t i, const Entry& before, uint64_t t_ns) {
    if (i >= ncur_) return false;
    Entry& e = slot(i);
    e = before;
    e.offset = append(frames(before), before.depth);
    e.t_ns = t_ns;
    // It did not run up to this tick's copy of the GIL: the next tick may compare with it.
    e.switches = switches_;
    e.switches_known = gil_known_;
    if (clock_read_) {
        e.cpu_ns = clock_ns_;
        e.clock_known = true;
    }
    return before.tstate != holder_;
}

void LastStacks::record(size_t i, const ThreadSeen& t, const FrameRecord* frames, int depth, bool truncated,
                        uint64_t t_ns) {
    if (i >= ncur_) return;
    Entry& e = slot(i);
    e.tstate = t.tstate;
    e.ident = t.ident;
    e.tid = t.tid;
    e.has_stack = frames != nullptr;
    e.truncated = truncated;
    e.depth = static_cast<uint16_t>(frames != nullptr ? depth : 0);
    e.offset = frames != nullptr ? append(frames, depth) : 0;
    // The GIL was copied before the walk: a thread that ran after it changed the count or holds it.
    e.switches = switches_;
    e.switches_known = gil_known_;
    e.clock_known = clock_read_;
    e.cpu_ns = clock_ns_;
    e.t_ns = t_ns;
}

void LastStacks::end_tick() {
    std::swap(prev_, cur_);
    std::swap(prev_frames_, cur_frames_);
    nprev_ = std::exchange(ncur_, 0);
}

}  // namespace spprof
