// Copies one thread's Python frame chain and checks that the copy is consistent.
//
// Safety contract: runs on the sampler thread only, without the GIL; every read of interpreter
// memory goes through SafeReader; all buffers are allocated at construction, none on a walk.
// A walk that fails any check returns Torn and nothing of it is reported.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <vector>

#include "layout.h"
#include "safe_read.h"
#include "sample_queue.h"

namespace spprof {

enum class Capture { Ok, Empty, Torn };

class FrameCapture {
public:
    FrameCapture(const spprof_layout& layout, SafeReader& reader, int max_depth);

    // `ts` is a copy of a thread state. Writes up to max_depth frames, innermost
    // first, into `out`; sets `truncated` when older frames were left out.
    Capture capture(const uint8_t* ts, FrameRecord* out, int& depth, bool& truncated);

private:
    struct Walked { uint64_t code; uint64_t instr; };

    Capture walk_objects(const uint8_t* ts, int& n, bool& truncated);
    Capture walk_interpreter(const uint8_t* ts, int& n, bool& truncated);
    const uint8_t* frame_bytes(uint64_t addr);
    Capture resolve_codes(int n, FrameRecord* out);
    void remember_top(uint64_t code_addr, uint64_t prev_addr, const uint8_t* code, const uint8_t* prev);
    bool top_unchanged();

    const spprof_layout& L;
    SafeReader& reader_;
    int max_depth_;
    int max_hops_;

    std::vector<uint8_t> chunk_;        // copy of the used part of the current stack chunk
    uint64_t chunk_lo_ = 0, chunk_hi_ = 0;
    std::vector<uint8_t> frame_;        // one frame read on its own
    std::vector<Walked> walked_;
    std::vector<uint64_t> unique_;      // distinct code addresses of a stack
    std::vector<uint8_t> codes_;        // their headers, co_size bytes each
    std::vector<struct iovec> local_, remote_;

    // What the consistency re-read compares: the innermost frame's code and caller fields.
    uint64_t top_addr_[2] = {0, 0};
    uint64_t top_seen_[2] = {0, 0};
};

}  // namespace spprof
