// Whether a thread that does not hold the GIL stopped where the interpreter hands the GIL over
// between two instructions: a loop's back edge or a function's entry (3.11+), read from the
// opcode at its innermost frame's instruction. There the thread waits for the GIL (or runs): it is
// not blocked in a system call, so its kernel state (thread_states.h) need not be read.
//
// Safety contract: runs on the sampler thread only, without the GIL; reads interpreter memory
// only through SafeReader; its table is allocated at construction. A read that fails says
// "no", and the caller then reads the thread's kernel state as before.
#pragma once

#include <cstdint>
#include <vector>

#include "layout.h"
#include "safe_read.h"
#include "sample_queue.h"

namespace spprof {

class GilWaits {
public:
    GilWaits(const spprof_layout& layout, SafeReader& reader);
    // `innermost` is the first frame of a walk that was not torn. The opcode at an instruction
    // is read once and remembered by code object (address and fingerprint) and offset: a thread
    // waiting for the GIL stops at the same few instructions tick after tick. The opcode there
    // can change (the interpreter specialises it), but only between forms of the same instruction.
    bool at_handover(const FrameRecord& innermost);

private:
    struct Entry { uint64_t code = 0, fingerprint = 0; int64_t instr = -1; bool handover = false; };
    const spprof_layout& L;
    SafeReader& reader_;
    std::vector<Entry> seen_;  // direct-mapped by code and offset
};

}  // namespace spprof
