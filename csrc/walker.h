// How a thread's chain of Python frames is walked: one walker per frame model, chosen once when
// a FrameCapture is made. The rest of the versions' differences are layout data (layout.h).
//   walker_objects.cpp  3.9/3.10: heap PyFrameObjects linked by f_back
//   walker_interp.cpp   3.11+: _PyInterpreterFrames in the thread's stack chunks
//
// Safety contract: as frame_capture.h's. A walker runs on the sampler thread only, without the
// GIL, reads interpreter memory only through the capture's SafeReader, and allocates nothing on
// a walk. It is part of its FrameCapture: it fills the capture's list of walked frames and uses
// its batch buffers, its read-ahead of code objects and its torn counters.
#pragma once

#include <cstdint>
#include <memory>

#include "bytes.h"

namespace spprof {

enum class Capture { Ok, Empty, Torn };

// One frame as walked: its code object's address, its instruction (bytes from the start of the
// bytecode, -1 before the first, for frame objects; the instruction pointer for 3.11+) and the
// frame's own address.
struct Walked { uint64_t code; uint64_t instr; uint64_t frame; };

// True when the `size` bytes at `addr` lie in [lo, hi). Written so that nothing can wrap: `addr`
// may come from a torn copy, where `addr + size <= hi` would let a field of ~0 through.
inline bool within(uint64_t addr, uint64_t size, uint64_t lo, uint64_t hi) {
    return addr >= lo && addr < hi && hi - addr >= size;
}

class FrameCapture;

class FrameWalker {
public:
    virtual ~FrameWalker() = default;
    // `ts` is a copy of the thread state at `ts_addr`. Puts up to max_depth frames, innermost
    // first, in the capture's walked list and their number in `n`; sets `truncated` when older
    // frames were left out. Empty: the thread runs no Python code. Torn: counted and dropped.
    virtual Capture walk(uint64_t ts_addr, const uint8_t* ts, int& n, bool& truncated) = 0;
    // The byte offset of `w`'s instruction in its code object, whose header is copied in `code`
    // (-1 before the first instruction); false when it cannot lie in that code object.
    virtual bool instruction_bytes(const Walked& w, const uint8_t* code, int64_t& bytes) const = 0;
    // Whether the last walk read a frame outside its batched copy (a generator's or coroutine's):
    // the thread's next walk then reads the code objects ahead with that frame.
    virtual bool left_copy() const { return false; }
    // After an Ok walk of `n` frames and the capture's re-read: whether the thread's frames as
    // they are now still lead into the walked chain.
    virtual bool still_the_threads(int /*n*/) { return true; }
};

std::unique_ptr<FrameWalker> make_object_walker(FrameCapture& capture);
std::unique_ptr<FrameWalker> make_interpreter_walker(FrameCapture& capture);

}  // namespace spprof
