// The native thread id of each Python thread, by its ident, for interpreters whose thread
// states hold none.
//
// Safety contract: written by Python code holding the GIL (one writer at a time), read lock-free
// by the sampler thread; it never allocates after construction.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace spprof {

// ident -> native thread id, for 3.9/3.10 whose thread states carry no native id.
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

}  // namespace spprof
