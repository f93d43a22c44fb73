// Copies one thread's Python frame chain and checks that the copy is consistent. The walk itself
// is the frame model's walker (walker.h), chosen at construction; the capture retries torn walks,
// reads and checks the code objects the walk found, and re-reads the innermost frame.
//
// Safety contract: runs on the sampler thread only, without the GIL; every read of interpreter
// memory goes through SafeReader; all buffers are allocated at construction, none on a walk.
// A walk that fails any check returns Torn and nothing of it is reported.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "code_ranges.h"
#include "layout.h"
#include "safe_read.h"
#include "sample_queue.h"
#include "walker.h"

namespace spprof {

constexpr size_t kChainSlots = 64;  // threads whose last chain and code objects are remembered
constexpr size_t kWalkerReads = 40;  // reads a walker adds to one batch besides the read-ahead
// The slot of what is remembered of a thread, by its thread state's address (whose low bits are
// mostly alike: malloc aligns it). Two threads may share a slot: users check the owner.
inline size_t thread_slot(uint64_t ts_addr) { return static_cast<size_t>((ts_addr >> 6) % kChainSlots); }

// Why a walk was rejected; counted for stats().
enum TornReason { kTornPointer, kTornUnreadable, kTornNotFrame, kTornNotRunning, kTornSuspended,
                  kTornNotCode, kTornInstruction, kTornTopMoved, kTornAnchor, kTornOtherThread, kTornReasons };
extern const char* const kTornReasonNames[kTornReasons];

class FrameCapture {
public:
    FrameCapture(const spprof_layout& layout, SafeReader& reader, int max_depth);

    // `ts` is a copy of the thread state at `ts_addr`. Writes up to max_depth frames, innermost
    // first, into `out`; sets `truncated` when older frames were left out.
    Capture capture(uint64_t ts_addr, const uint8_t* ts, FrameRecord* out, int& depth, bool& truncated);
    // A walk torn and taken again lands later, where the thread stays longer: kept whole, it would
    // charge the short phase the first copy was torn in to the long one after it. begin_walks()
    // comes before a thread's first capture of a tick. After an Ok capture that followed a torn
    // one, settle_after_tear() keeps of `out` the frames the torn copy agrees with: from the
    // outermost, those its chain had too (or, where its walk stopped before the thread's first
    // frame, the thread's last whole chain had), which the thread ran inside all along; from the
    // innermost, those it had too (the same function at the same depth from that end: a walk's
    // innermost frames are read first, its tear lies further out). A kUnknownRecord stands for the
    // frames between, which the thread went through at one time or the other. Returns the new
    // depth, or -1 when `out` stands whole (nothing torn, both agree, nothing to hold it against,
    // or `out` is truncated).
    void begin_walks() { ref_n_ = -1; }
    int settle_after_tear(FrameRecord* out, int depth, bool truncated) const;
    uint64_t torn(int reason) const { return torn_[reason].load(std::memory_order_relaxed); }
    // Whether the last capture met a generator's or coroutine's frame: a stack without one runs
    // no asyncio task's coroutine, and its task needs no read.
    bool met_generator() const { return met_generator_; }
    // Frames found elsewhere (a suspended task's coroutines, waiting_tasks.h), innermost first,
    // at most max_depth: their code objects read and checked as a walk's are. False when one fails.
    bool resolve(const Walked* frames, int n, FrameRecord* out);

private:
    // The walkers are parts of the capture: they fill walked_, batch their reads with the
    // read-ahead in local_/remote_, remember the innermost frame and count torn walks.
    friend class ObjectWalker;
    friend class InterpreterWalker;

    Capture reject(TornReason why) {
        torn_[why].fetch_add(1, std::memory_order_relaxed);
        return Capture::Torn;
    }
    void note_tear(uint64_t ts_addr, int n);
    void remember_chain(uint64_t ts_addr, int n, bool truncated);

    // `thread`: the frames are a thread's walk, whose code objects its next walk reads ahead.
    Capture resolve_codes(uint64_t ts_addr, int n, FrameRecord* out, bool thread = true);
    size_t add_prefetch(uint64_t ts_addr, struct iovec* l, struct iovec* r);
    void prefetch_done(size_t main_bytes, size_t copied);
    // `current_addr`: where the thread's current-frame pointer lives, read with the re-read into
    // current_now_ (0: not read).
    void remember_top(uint64_t code_addr, uint64_t prev_addr, const uint8_t* code, const uint8_t* prev,
                      uint64_t current_addr = 0);
    bool top_unchanged();

    const spprof_layout& L;
    SafeReader& reader_;
    int max_depth_;
    int max_hops_;
    std::unique_ptr<FrameWalker> walker_;

    std::vector<Walked> walked_;
    std::vector<uint64_t> unique_;      // distinct code addresses of a stack
    std::vector<uint8_t> codes_;        // their headers, co_size bytes each
    std::vector<uint8_t> names_;        // their name strings' first bytes, where the fingerprint needs them
    std::vector<struct iovec> local_, remote_;
    std::vector<const uint8_t*> code_at_, name_at_;  // each distinct code's header and name copies

    // The code objects (and names) of each thread's last sample, read speculatively in the same
    // system call as its frames: a thread that runs the same functions needs no further read.
    // `outside`: its last walk read a frame outside the walker's batched copy (3.11+). `chain`:
    // its last whole chain, outermost first, which a torn walk that stopped short is held against.
    struct Prefetch {
        uint64_t tstate = 0;
        int n = 0, chain_n = 0;
        bool outside = false;
        std::vector<uint64_t> codes, names;
        std::vector<Walked> chain;
    };
    std::vector<Prefetch> prefetch_;
    std::vector<uint8_t> pf_codes_, pf_names_;
    Prefetch* pf_ = nullptr;
    size_t pf_bytes_ = 0;
    bool pf_ready_ = false;

    // What the consistency re-read compares: the innermost frame's code and caller fields.
    uint64_t top_addr_[2] = {0, 0};
    uint64_t top_seen_[2] = {0, 0};
    uint64_t current_addr_ = 0, current_now_ = 0;
    bool check_top_ = true;
    bool met_generator_ = false;
    bool whole_ = false;  // the walk reached the thread's first frame (set by the walkers)
    // The walk's first frame was read through a record the thread left while it was read: set by
    // the walkers, it makes the torn copy say nothing of where the thread was (note_tear).
    bool blind_ = false;
    // The first torn copy of this tick's walks of a thread: the chain it had, outermost first (or
    // the thread's last whole chain, Prefetch::chain), and the frames its walk met, innermost first.
    std::vector<Walked> ref_, torn_top_;
    int ref_n_ = -1, torn_n_ = 0;
    // 3.14: the innermost code objects sampled, for a frame whose code was cleared as it returned.
    CodeRanges returned_;
    std::atomic<uint64_t> torn_[kTornReasons] = {};
};

}  // namespace spprof
