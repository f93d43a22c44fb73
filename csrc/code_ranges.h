// Which recently sampled code object an instruction pointer lies in.
//
// 3.14 clears a frame's code reference as it returns, once its caller is current again, and leaves
// the frame's instruction pointer as it was. A copy that read the frame as current and then caught
// its slot just after the return holds no code, but a pointer into the bytecode of the call that
// last ran there. The code objects sampled innermost are remembered with their bytecode's bounds,
// and such a frame gets the one whose bytecode holds its pointer. What is found is a candidate
// only: the capture reads that code object afresh and checks the pointer against its new header
// (FrameWalker::instruction_bytes) before it is named.
//
// Safety contract: one per FrameCapture, on the sampler thread only; fixed size, no allocation.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace spprof {

class CodeRanges {
public:
    // The bytecode of the code object at `code` lies in [lo, hi).
    void note(uint64_t code, uint64_t lo, uint64_t hi) {
        if (code == 0 || hi <= lo) return;
        slots_[((code >> 4) * 0x9E3779B97F4A7C15ull >> 57) % kSlots] = {code, lo, hi};
    }
    // The code object whose bytecode holds `instr`; 0 when none does, or more than one (a code
    // object that died and another that took its memory).
    uint64_t find(uint64_t instr) const {
        uint64_t found = 0;
        for (const Range& r : slots_) {
            if (r.code == 0 || instr < r.lo || instr >= r.hi || r.code == found) continue;
            if (found != 0) return 0;
            found = r.code;
        }
        return found;
    }

private:
    static constexpr size_t kSlots = 128;
    struct Range { uint64_t code = 0, lo = 0, hi = 0; };
    std::array<Range, kSlots> slots_{};
};

}  // namespace spprof
