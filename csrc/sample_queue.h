// The one-way channel from the sampler thread to the collector.
//
// Safety contract: exactly one producer (the sampler) and one consumer (the collector). A sample is
// one header cell followed by `depth` frame cells, pushed in one call so the consumer sees all of
// it or none. A push that does not fit is refused at once: the sampler never waits.
#pragma once

#include <boost/lockfree/spsc_queue.hpp>

#include <cstddef>
#include <cstdint>

namespace spprof {

struct SampleHeader {
    uint64_t t_ns;          // CLOCK_MONOTONIC time of the tick
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
    int64_t reserved;
};

enum : uint16_t { kSampleTruncated = 1 };

union SampleCell {
    SampleHeader header;
    FrameRecord frame;
};
static_assert(sizeof(SampleCell) == 32, "cells are 32 bytes");

using SampleQueue = boost::lockfree::spsc_queue<SampleCell>;

}  // namespace spprof
