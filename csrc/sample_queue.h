// The one-way channel from the sampler thread to the collector.
//
// Safety contract: exactly one producer (the sampler) and one consumer (the collector). A sample is
// one header cell followed by `depth` frame cells, pushed in one call so the consumer sees all of
// it or none. A push that does not fit is refused at once: the sampler never waits.
#pragma once

#include <boost/lockfree/spsc_queue.hpp>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>

namespace spprof {

struct SampleHeader {
    uint64_t t_ns;          // CLOCK_MONOTONIC, after its walk (not walked: the tick's latest time)
    uint64_t thread_ident;  // PyThreadState.thread_id (threading.get_ident())
    uint64_t weight_ns;     // CPU time since the previous record (cpu mode) or the interval (wall)
    uint32_t native_tid;
    uint16_t depth;         // frame cells that follow
    uint16_t flags;
};

// One Python frame as copied: enough to resolve it later and to notice a reused code address.
struct FrameRecord {
    uint64_t code;          // address of the code object
    uint64_t fingerprint;   // of the code object's identity fields, taken at sample time
    int64_t instr_bytes;    // offset of the current instruction in bytes; -1 before the first
    uint64_t frame;         // the frame's address: which task runs it (asyncio_tasks.h)
};

// A record in a stack for the frames a walk could not tell (frame_capture.h, settle_after_tear):
// "<unknown>" where it stands. No instruction offset is ever this.
constexpr int64_t kUnknownRecord = INT64_MIN + 0x3f1;

// kSampleUnknown: the walk was torn after every retry; its weight goes to "<unknown>", not nowhere.
// kSampleNative: a thread Python does not know (csrc/native_threads.h); its one frame cell holds
// the thread's name (16 bytes, NUL-terminated) instead of a frame.
enum : uint16_t { kSampleTruncated = 1, kSampleUnknown = 2, kSampleNative = 4 };

union SampleCell {
    SampleHeader header;
    FrameRecord frame;
};
static_assert(sizeof(SampleCell) == 32, "cells are 32 bytes");

using SampleQueue = boost::lockfree::spsc_queue<SampleCell>;

// How the sampler wakes the collector early: when frames need naming while their code objects
// live, or when the queue is half full. A raw futex on one word, so the sampler takes no lock; it
// spends a system call only on a request the collector has not yet taken.
class DrainSignal {
public:
    void request() {
        if (!(word_.load(std::memory_order_relaxed) & kRequest) && !(word_.fetch_or(kRequest) & kRequest)) wake(1);
    }
    void stop() {
        word_.fetch_or(kStop);
        wake(INT_MAX);
    }
    void take() { word_.fetch_and(~kRequest); }
    // Sleeps until `deadline`, or until stopped (true), or, when `requests`, until a request.
    bool wait_until(std::chrono::steady_clock::time_point deadline, bool requests) {
        for (;;) {
            const uint32_t w = word_.load();
            if (w & kStop) return true;
            if (requests && (w & kRequest)) return false;
            const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(
                deadline - std::chrono::steady_clock::now()).count();
            if (left <= 0) return false;
            struct timespec ts = {static_cast<time_t>(left / 1000000000), static_cast<long>(left % 1000000000)};
            syscall(SYS_futex, word(), FUTEX_WAIT_PRIVATE, w, &ts, nullptr, 0);
        }
    }

private:
    static constexpr uint32_t kRequest = 1, kStop = 2;
    static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t) && std::atomic<uint32_t>::is_always_lock_free,
                  "the futex word is a plain 32-bit word");
    uint32_t* word() { return reinterpret_cast<uint32_t*>(&word_); }
    void wake(int n) { syscall(SYS_futex, word(), FUTEX_WAKE_PRIVATE, n, nullptr, nullptr, 0); }
    std::atomic<uint32_t> word_{0};
};

}  // namespace spprof
