// 3.11+: _PyInterpreterFrames, mostly in the thread's current stack chunk. The current-frame
// pointer, the used part of the chunk and the pointer again are copied in one system call. When
// the two reads agree, the chunk was copied while that frame stayed current. When they differ, the
// thread called or returned during the copy; the copy is still one consistent stack if either
// frame is an ancestor of the other in it (the thread only went deeper, or only returned), and
// torn otherwise. Requiring equality would drop nearly every sample taken inside a short call.
// Generators' and coroutines' frames lie outside the chunk: those a thread keeps meeting are copied
// between the two reads of the pointer too (see Outside).
#include <algorithm>
#include <vector>

#include "bytes.h"
#include "frame_capture.h"
#include "walker.h"

namespace spprof {

namespace {
constexpr size_t kChunkCopy = 256 * 1024;
constexpr uint64_t kChunkSlack = 2048;
constexpr uint64_t kTopFirst = 1024;  // bytes below the copied top that are read before the rest
constexpr int kAnchorRetries = 2;     // batches taken again when the 3.11/3.12 cframe moved
constexpr size_t kCframes = 4;        // 3.11/3.12: C-stack records remembered per thread
constexpr int kSwitchingWalks = 32;   // walks of a thread that read every record after it last switched
constexpr uint64_t kRecordSpan = 1 << 20;  // records nested on one C stack lie within this
constexpr int kOutsideLinks = 4;      // frames outside the copy read to link a moved top to the walk's
constexpr uint64_t kEntryNear = 4096;  // 3.12: a record's own entry frame lies this close to it
constexpr size_t kOutsideKept = 12;   // frames outside the chunk (generators', coroutines') a batch reads
constexpr size_t kOutsideKnown = 16;  // ... and remembered per thread
constexpr uint8_t kOutsideAge = 8;    // walks after which a frame not met again is forgotten
constexpr size_t kEntered = 4096;     // 3.12+: generators' frames remembered as entered from C
}  // namespace
static_assert(3 * (kCframes + 1) + 6 + kOutsideKept <= kWalkerReads, "a batch's reads fit FrameCapture's");

// Puts `v` first in `at`, newest first: in place of the entry `same` as it, else of the oldest.
template <class T, size_t N, class Same>
static void to_front(T (&at)[N], const T& v, Same same) {
    size_t i = 0;
    while (i + 1 < N && !same(at[i], v)) ++i;
    for (; i > 0; --i) at[i] = at[i - 1];
    at[0] = v;
}

class InterpreterWalker final : public FrameWalker {
public:
    explicit InterpreterWalker(FrameCapture& cap)
        : cap_(cap), L(cap.L), via_cframe_(cap.L.frame_model == SPPROF_FRAMES_CFRAME),
          record_links_(via_cframe_ && cap.L.cframe_previous != 0 && cap.L.if_is_entry != 0),
          entry_links_(cap.L.trampoline_code != 0 || !via_cframe_) {
        chunk_.resize(kChunkCopy);
        older_.resize(kChunkCopy);
        fresh_.resize(kChunkCopy);
        frame_.resize(L.if_size + 64);
        cframes_.resize(kChainSlots);
        outside_seen_.resize(kChainSlots);
        outside_copy_.resize(kOutsideKept * L.if_size);
        again_.resize(kTopFirst + kChunkSlack);
        if (entry_links_) {
            entered_.resize(kEntered);
            entry_below_.resize(kChainSlots);
        }
    }

    Capture walk(uint64_t ts_addr, const uint8_t* ts, int& n, bool& truncated) override;
    bool instruction_bytes(const Walked& w, const uint8_t* code, int64_t& bytes) const override;
    bool left_copy() const override { return outside_; }

private:
    const uint8_t* frame_bytes(uint64_t addr);
    bool copy_older_chunk(uint64_t addr);
    bool descends_to(uint64_t from, uint64_t target, bool read_outside = false);
    const uint8_t* batch_copy(uint64_t addr) const;
    bool frames_intact(uint64_t from, uint64_t ancestor) const;
    size_t record_at_reads(const uint64_t* cand, const uint64_t* first, size_t m, size_t named, uint64_t mid) const;
    uint64_t code_of(uint64_t addr, const uint8_t* fb) const;
    // A generator entered from C: its frame and code, the frame walked before it, and the caller
    // of the entry frame under it.
    struct Entry { uint64_t gen = 0, code = 0, above = 0, below = 0; };
    void saw_entry(const Entry& e);
    uint64_t entered_below(uint64_t gen, uint64_t gen_code, uint64_t above) const;

    FrameCapture& cap_;
    const spprof_layout& L;
    // 3.11/3.12 reach the current frame through a _PyCFrame; 3.13+ keep it in the thread state.
    const bool via_cframe_;
    // 3.11: a generator or coroutine always runs as the first frame of a record of its own,
    // called from the current frame of the record around it. A thread that switched lately
    // reads each record's link to the one around it in the batch; when the walk reaches a
    // generator that had suspended by the time its frame was read on its own (one task of many,
    // not remembered), it goes on from the frame that called it at the batch, instead of ending
    // there (50 tasks of 15 us steps: 23-35 % of the samples in them stopped at the task).
    const bool record_links_;
    uint64_t outer_[kCframes] = {};  // the current frames of the records around the walk's, inwards first
    size_t n_outer_ = 0;
    // 3.12+: the same for a generator or coroutine entered from C (a task's own coroutine, which
    // the event loop's step resumes), which 3.12 may also run inline from another one and 3.13+
    // keep no records for. Its caller is the frame below the entry frame under it, and the first
    // frame its own code calls is pushed on the chunk right above that caller. Both are learnt from
    // whole walks: the generators seen entered from C (entered_, by frame and code), and per thread
    // the frame such a callee sits on (entry_below_). A walk that reaches one of those generators
    // suspended goes on from that frame when the chunk copy still holds it, with the same code and
    // caller, under the same callee's place (50 tasks of 15 us steps: 13-27 % of the samples in
    // them stopped at the task on 3.12-3.14).
    const bool entry_links_;
    struct Gen { uint64_t frame = 0, code = 0; };
    std::vector<Gen> entered_;
    struct Below { uint64_t above = 0, frame = 0, code = 0, prev = 0; };
    struct EntryBelow { uint64_t tstate = 0; Below at[kCframes]; };
    std::vector<EntryBelow> entry_below_;

    std::vector<uint8_t> chunk_;        // copy of the used part of the current stack chunk
    uint64_t chunk_lo_ = 0, chunk_hi_ = 0;
    std::vector<uint8_t> older_;        // copy of the older chunk the walk is in, when it left chunk_
    uint64_t older_lo_ = 0, older_hi_ = 0;
    uint64_t older_next_ = 0;           // the chunk before the last one copied, from its header
    std::vector<uint8_t> fresh_;        // the chunk above the walk's first frame, read again (descends_to)
    std::vector<uint8_t> frame_;        // one frame read on its own
    bool pf_later_ = false;   // this walk reads ahead with its first frame outside the chunk
    bool outside_ = false;    // this walk read a frame outside the chunk
    uint64_t ts_addr_ = 0;
    uint64_t moved_to_ = 0;   // the current frame read after the chunk copy, when it differed
    uint64_t returned_ = 0;   // 3.14: the current frame, whose code was cleared as it returned
    uint64_t returned_code_ = 0;  // ... and the code its instruction pointer lies in

    // 3.11/3.12: the _PyCFrames a thread was last seen under, newest first. A thread that
    // switches records (an event loop and its tasks) has each one's current frame read in the
    // batch, so the record that was current when the batch began is always among those read: it
    // is walked where the batch found it, not where a batch taken again later would (which favours
    // the longer phases). A thread seen under one record for a while reads that one only.
    struct Cframes { uint64_t tstate = 0; uint64_t at[kCframes] = {}; int switching = 0; };
    std::vector<Cframes> cframes_;
    static void saw_cframe(Cframes& known, uint64_t cf);

    // The frames outside the chunk (a generator's or coroutine's frame lives in its object) that a
    // thread's walks met more than once lately: its next batch copies them between the two reads
    // of the current frame, so they are read while the chunk's frames are and the checks that make
    // the chunk's copy consistent cover them too. One read on its own after the batch shows where
    // the generator is by then (another line, or suspended), not where it was. A frame met once
    // (one of many tasks) is read on its own: copying it each time would cost more than it saves.
    struct Outside {
        uint64_t tstate = 0;
        size_t n = 0;
        uint64_t at[kOutsideKnown] = {};
        uint8_t hits[kOutsideKnown] = {}, age[kOutsideKnown] = {};
        void met(uint64_t addr);
        void older();
    };
    std::vector<Outside> outside_seen_;
    std::vector<uint8_t> outside_copy_;  // this batch's copies of them
    uint64_t batch_at_[kOutsideKept] = {};  // ... of the frames at these addresses
    size_t batch_n_ = 0;                    // copies to use: 0 until the batch was taken
    // The chunk's innermost part copied again after them: a chunk frame whose caller is one of
    // them must have the same caller in both copies. The thread may have gone from one generator's
    // call to another's at the same place in the chunk in between (a pipeline's stages), and the
    // frames outside were then copied from the other one's time. (A caller read on its own after
    // the batch is not checked: it is not of the batch's time whatever the check says, and the
    // walk taken again would land in the longer phase.)
    std::vector<uint8_t> again_;
    uint64_t again_lo_ = 0, again_hi_ = 0;
    Outside* seen_ = nullptr;
};

Capture InterpreterWalker::walk(uint64_t ts_addr, const uint8_t* ts, int& n, bool& truncated) {
    moved_to_ = 0;
    // 3.11/3.12 keep the current frame in a _PyCFrame on the C stack of the innermost evaluation
    // loop, and every generator or coroutine resumed from C starts a new one: the thread state's
    // copy may name one already left, whose stale slot holds an outer or dead frame. The record
    // the copy named is the one expected, and the cframe pointer is read again in the batch, after
    // the current frames and last (a thread that switched lately: also first). A thread that stays
    // under one record reads that record's current frame before them, and the batch is taken
    // again from the newer cframe when it moved. One that switched lately reads the
    // current frame of every record it was seen under; the one named first is the anchor (3.12:
    // or the one named again right after those reads, see record_at_reads), and the batch is
    // taken again only for a record never seen before.
    const bool via_cframe = via_cframe_;
    uint64_t cframe = via_cframe ? load_u64(ts + L.ts_frame) : 0;
    if (via_cframe && cframe == 0) return Capture::Empty;
    if (via_cframe && !plausible(cframe)) return cap_.reject(kTornPointer);
    uint64_t anchor = via_cframe ? cframe + L.cframe_current_frame : ts_addr + L.ts_frame;
    Cframes& known = cframes_[thread_slot(ts_addr)];
    if (known.tstate != ts_addr) known = Cframes{ts_addr, {}};
    Outside& seen = outside_seen_[thread_slot(ts_addr)];
    if (seen.tstate != ts_addr) seen = Outside{ts_addr};
    seen.older();
    seen_ = &seen;
    size_t outside_n = 0;
    for (size_t i = 0; i < seen.n && outside_n < kOutsideKept; ++i)
        if (seen.hits[i] >= 2) batch_at_[outside_n++] = seen.at[i];
    batch_n_ = 0;
    again_lo_ = again_hi_ = 0;
    n_outer_ = 0;

    chunk_lo_ = chunk_hi_ = 0;
    older_lo_ = older_hi_ = older_next_ = 0;
    // A thread whose last stack left the chunk (a generator's or coroutine's frame) reads the code
    // objects ahead with that frame, not with the chunk: a long batch would let the generator
    // suspend before its frame is read, and the walk be torn.
    const FrameCapture::Prefetch& slot = cap_.prefetch_[thread_slot(ts_addr)];
    pf_later_ = slot.tstate == ts_addr && slot.outside && outside_n == 0;
    ts_addr_ = ts_addr;
    outside_ = false;
    uint64_t f = 0;
    uint64_t chunk = load_u64(ts + L.ts_datastack_chunk);
    uint64_t top = load_u64(ts + L.ts_datastack_top);
    uint64_t limit = load_u64(ts + L.ts_datastack_limit);
    for (int attempt = 0; plausible(chunk) && top > chunk && limit >= top && limit - chunk < (1ull << 30); ++attempt) {
        if (!plausible(cframe) && via_cframe) return cap_.reject(kTornPointer);
        anchor = via_cframe ? cframe + L.cframe_current_frame : anchor;
        // The records whose current frame is read: the one expected, then, for a thread that
        // switched lately, the others known.
        uint64_t cand[kCframes + 1] = {cframe};
        size_t m = 1;
        for (size_t i = 0; via_cframe && known.switching > 0 && i < kCframes; ++i)
            if (plausible(known.at[i]) && known.at[i] != cframe) cand[m++] = known.at[i];
        // Frames pushed since the thread state was copied lie just above top: take some of them too.
        uint64_t hi = std::min(limit, top + kChunkSlack);
        // From the chunk's start when it fits: its header links to the older chunk.
        uint64_t lo = std::max<uint64_t>(chunk, hi > kChunkCopy ? hi - kChunkCopy : 0);
        uint64_t first[kCframes + 1] = {}, last[kCframes + 1] = {}, cf_before = cframe, cf_mid = cframe, cf_after = cframe;
        struct iovec* l = cap_.local_.data();
        struct iovec* r = cap_.remote_.data();
        size_t k = 0;
        void* const cf_addr = reinterpret_cast<void*>(ts_addr + L.ts_frame);
        auto anchor_of = [&](size_t j) {
            return reinterpret_cast<void*>(via_cframe ? cand[j] + L.cframe_current_frame : anchor);
        };
        // Nothing of the thread state is read just before the current frame of a thread seen
        // under one record lately. A read of its first cache line, which the thread writes at
        // every call and return (the recursion counters beside the cframe pointer), moved the
        // next read against the thread's calls: the caller of a loop's tiny calls got 18-24 % of
        // the loop's time on 3.12 and 0.9-2.6 % on 3.11, where a copy of the thread stopped on the
        // sampler's own CPU finds 3.5-3.9 % (bench/tiny_calls.py); the records read right after
        // and last must then be the copy's. A thread that switched lately may be under a record
        // its copy did not name: the record current just before the reads is read then.
        const bool record_first = via_cframe && m > 1;
        if (record_first) { l[k] = {&cf_before, 8}; r[k++] = {cf_addr, 8}; }
        for (size_t j = 0; j < m; ++j) { l[k] = {&first[j], 8}; r[k++] = {anchor_of(j), 8}; }
        if (via_cframe) { l[k] = {&cf_mid, 8}; r[k++] = {cf_addr, 8}; }
        // The innermost frames first, right after the pointer to them: a frame copied later may
        // already have returned and its slot hold the next callee (a loop's last call, for longer
        // than the others), which would then be charged for the call that was running.
        const uint64_t mid = std::max(lo, std::min(hi, top > kTopFirst ? top - kTopFirst : 0));
        l[k] = {chunk_.data() + (mid - lo), hi - mid};
        r[k++] = {reinterpret_cast<void*>(mid), hi - mid};
        if (mid > lo) {
            l[k] = {chunk_.data(), mid - lo};
            r[k++] = {reinterpret_cast<void*>(lo), mid - lo};
        }
        const size_t pointers = m + static_cast<size_t>(via_cframe) + (record_first ? 1 : 0);
        const size_t before_outside = 8 * pointers + (hi - lo);
        for (size_t i = 0; i < outside_n; ++i) {
            l[k] = {outside_copy_.data() + i * L.if_size, L.if_size};
            r[k++] = {reinterpret_cast<void*>(batch_at_[i]), L.if_size};
        }
        const size_t again = outside_n > 0 ? hi - mid : 0;
        if (again > 0) {
            l[k] = {again_.data(), again};
            r[k++] = {reinterpret_cast<void*>(mid), again};
        }
        uint64_t around[kCframes + 1] = {};
        const size_t links = record_links_ && m > 1 ? m : 0;
        for (size_t j = 0; j < links; ++j) {
            l[k] = {&around[j], 8};
            r[k++] = {reinterpret_cast<void*>(cand[j] + L.cframe_previous), 8};
        }
        for (size_t j = 0; j < m; ++j) { l[k] = {&last[j], 8}; r[k++] = {anchor_of(j), 8}; }
        if (via_cframe) { l[k] = {&cf_after, 8}; r[k++] = {cf_addr, 8}; }
        const size_t main_bytes = before_outside + outside_n * L.if_size + again + 8 * links +
                                  8 * (m + static_cast<size_t>(via_cframe));
        size_t total = k + (pf_later_ ? 0 : cap_.add_prefetch(ts_addr, l + k, r + k));
        size_t copied = cap_.reader_.readv_prefix(l, r, total);
        cap_.prefetch_done(main_bytes, copied);
        if (copied < main_bytes) {
            // A generator remembered from the last walk, or a record remembered from a thread
            // state since reused, may lie in freed memory.
            if (outside_n > 0 && copied >= before_outside && attempt < kAnchorRetries) {
                seen.n = outside_n = 0;
                continue;
            }
            if (m == 1 || attempt == kAnchorRetries) break;
            known = Cframes{ts_addr, {}, 0};
            continue;
        }
        size_t j = 0;
        if (via_cframe) {
            const bool switched = cf_before != known.at[0] || cf_after != cf_before || cf_mid != cf_before;
            if (plausible(cf_after)) saw_cframe(known, cf_after);
            if (plausible(cf_mid)) saw_cframe(known, cf_mid);
            if (plausible(cf_before)) saw_cframe(known, cf_before);
            known.switching = switched ? kSwitchingWalks : std::max(known.switching - 1, 0);
            // One record read: it must have been current right after its frame was read and at the
            // end of the batch.
            const uint64_t named = m == 1 && (cf_mid != cf_before || cf_after != cf_before) ? 0 : cf_before;
            while (j < m && cand[j] != named) ++j;
            if (j == m) {
                if (attempt == kAnchorRetries) return cap_.reject(kTornAnchor);
                cframe = m == 1 ? cf_after : cf_before;
                continue;
            }
            if (m > 1 && cf_mid != cf_before) j = record_at_reads(cand, first, m, j, cf_mid);
        }
        // 3.11/3.12 name a record current before they set its current frame: a walk caught
        // there is still in the call that entered it, the current frame of the record around it
        // (the nearest above it on the C stack, which grows down). Charging that frame
        // over-counted it (3.11's event loop: Handle._run on top of 2.1-4.8 % of samples against
        // 1.5-1.7 % from copies of the thread stopped), as the thread is into the new record by
        // the time it is copied: taken again, the walk finds where it is.
        if (m > 1 && first[j] != 0 && !plausible(first[j])) {
            size_t up = j;
            for (size_t i = 0; i < m; ++i)
                if (cand[i] > cand[j] && cand[i] - cand[j] < kRecordSpan && (up == j || cand[i] < cand[up])) up = i;
            if (up != j && plausible(first[up])) {
                cap_.blind_ = true;
                return cap_.reject(kTornAnchor);
            }
        }
        batch_n_ = outside_n;
        again_lo_ = again > 0 ? mid : 0;
        again_hi_ = again > 0 ? hi : 0;
        chunk_lo_ = lo;
        chunk_hi_ = hi;
        if (via_cframe && m > 1 && L.trampoline_code == 0) {  // 3.11
            // A generator's own frame current in a record the thread was not under all through
            // the batch: its copy, taken after the records were read, may be of the generator's
            // next activation (3.11 keeps its frame where it was), at another line. (One read on
            // its own after the batch is not of the batch's time either way; see again_.)
            // A record left before the read right after its current frame's: that frame may be of
            // a later moment than the one the record was current at, and the torn copy tells
            // nothing of where the thread was (note_tear).
            if (batch_copy(first[j]) != nullptr && (cand[j] != cf_mid || cand[j] != cf_after)) {
                cap_.blind_ = cand[j] != cf_mid;
                return cap_.reject(kTornAnchor);
            }
        }
        // Only for a record current all through the batch: its link and the records' frames are
        // then of one moment.
        if (links > 0 && cand[j] == cf_before && cand[j] == cf_mid && cand[j] == cf_after) {
            for (size_t at = j; n_outer_ < kCframes;) {
                size_t up = 0;
                while (up < m && (cand[up] != around[at] || up == at)) ++up;
                if (up == m || !plausible(first[up])) break;
                outer_[n_outer_++] = first[up];
                at = up;
            }
        }
        f = first[j];
        moved_to_ = last[j];
        if (lo == chunk) older_next_ = load_u64(chunk_.data() + L.chunk_previous);
        break;
    }
    if (chunk_hi_ == 0 && !cap_.reader_.read(anchor, &f, sizeof f)) return cap_.reject(kTornUnreadable);
    if (f == 0) return Capture::Empty;
    // 3.14 clears a returning frame's code once its caller is current, so the frame read as
    // current may have none in the copy. Its instruction pointer is left in the code of the last
    // call that ran in that slot, one that ran between the first read of the current frame and the
    // copy: that code names it (resolve_codes checks the pointer against a fresh read of it).
    returned_ = returned_code_ = 0;
    if (L.if_code_cleared && within(f, L.if_size, chunk_lo_, chunk_hi_)) {
        const uint8_t* fb = chunk_.data() + (f - chunk_lo_);
        if (code_of(f, fb) == 0 && static_cast<signed char>(fb[L.if_owner]) == L.owner_thread) {
            returned_code_ = cap_.returned_.find(load_u64(fb + L.if_instr));
            if (returned_code_ != 0) returned_ = f;
        }
    }
    // The thread returned during the copy: the frames it left may already be cleared in the copy
    // (3.14, where no code was found above, or more than one frame returned), so start from where
    // it returned to.
    if (moved_to_ != 0 && descends_to(f, moved_to_) && !frames_intact(f, moved_to_)) {
        f = moved_to_;
        moved_to_ = 0;
    }
    const uint64_t first_frame = f;
    // Only an innermost frame outside the consistent copy (a generator's) needs the re-read.
    cap_.check_top_ = !within(f, L.if_size, chunk_lo_, chunk_hi_);

    bool first = true;
    size_t left = 0;  // 3.11: records the walk left through their first frame
    // A record left just as its current frame was read may hold a stale pointer into a loop of
    // frames: met again, it is torn at once, not read frame by frame up to max_hops.
    uint64_t mark = 0;
    bool after_gen = false;  // the frame walked last is a running generator's, with one walked before it
    Entry learnt;            // the first one entered from C, met through its entry frame
    for (int hops = 0; f != 0; ++hops) {
        if (!plausible(f) || hops > cap_.max_hops_ || f == mark) return cap_.reject(kTornPointer);
        if ((hops & (hops + 1)) == 0) mark = f;  // Brent: the mark moves on after 1, 2, 4, 8 ... hops
        const uint8_t* fb = frame_bytes(f);
        if (fb == nullptr) return cap_.reject(kTornUnreadable);
        if (f == moved_to_) moved_to_ = 0;  // the thread returned to this ancestor: consistent
        int owner = static_cast<signed char>(fb[L.if_owner]);
        uint64_t prev = load_u64(fb + L.if_previous);
        if (within(f, L.if_size, again_lo_, again_hi_) && batch_copy(prev) != nullptr &&
            load_u64(again_.data() + (f - again_lo_) + L.if_previous) != prev)
            return cap_.reject(kTornTopMoved);
        if (first) { cap_.remember_top(f + L.if_code, f + L.if_previous, fb + L.if_code, fb + L.if_previous); first = false; }
        const uint64_t code = code_of(f, fb);
        // 3.12 writes an entry frame's code before its owner: one copied in between is a shim too
        bool shim = owner == L.owner_cstack || owner == L.owner_interpreter ||
                    (L.trampoline_code != 0 && code == L.trampoline_code);
        if (!shim) {
            if (n == cap_.max_depth_) { truncated = true; break; }
            cap_.walked_[static_cast<size_t>(n++)] = {code, load_u64(fb + L.if_instr), f};
            if (owner == L.owner_generator) cap_.met_generator_ = true;
            after_gen = entry_links_ && owner == L.owner_generator && prev != 0 && n >= 2;
            // A suspended generator's frame has no caller: it suspended after the frames below
            // it were copied. Those were running at the copy, and so was it: they are kept. An
            // innermost one may be a stale anchor: torn.
            if (prev == 0 && owner == L.owner_generator) {
                if (n == 1) return cap_.reject(kTornSuspended);
                if (left < n_outer_) {
                    f = outer_[left++];
                    continue;
                }
                if (entry_links_) {
                    const uint64_t below = entered_below(f, code, cap_.walked_[static_cast<size_t>(n - 2)].frame);
                    if (below != 0) {
                        f = below;
                        continue;
                    }
                }
                truncated = true;
                break;
            }
        } else if (after_gen) {
            const Walked& g = cap_.walked_[static_cast<size_t>(n - 1)];
            if (learnt.gen == 0) learnt = {g.frame, g.code, cap_.walked_[static_cast<size_t>(n - 2)].frame, prev};
            after_gen = false;
        }
        if (record_links_ && fb[L.if_is_entry] != 0) ++left;
        f = prev;
    }
    cap_.whole_ = !truncated;
    if (moved_to_ != 0 && !descends_to(moved_to_, first_frame, true)) return cap_.reject(kTornTopMoved);
    if (learnt.gen != 0 && !truncated) saw_entry(learnt);
    return Capture::Ok;
}

// A whole walk met the generator `e.gen` running, called from C. Remembered only when both
// `e.above` and `e.below` lie in the chunk copy, where the walk's frames are of one moment, the
// second under the first.
void InterpreterWalker::saw_entry(const Entry& e) {
    const uint64_t above = e.above, below = e.below;
    if (below >= above || !within(above, L.if_size, chunk_lo_, chunk_hi_) || !within(below, L.if_size, chunk_lo_, chunk_hi_))
        return;
    const uint8_t* fb = chunk_.data() + (below - chunk_lo_);
    const uint64_t code = code_of(below, fb);
    if (!plausible(code) || static_cast<signed char>(fb[L.if_owner]) != L.owner_thread) return;
    entered_[mix64(0, e.gen) % kEntered] = {e.gen, e.code};
    EntryBelow& t = entry_below_[thread_slot(ts_addr_)];
    if (t.tstate != ts_addr_) t = EntryBelow{ts_addr_, {}};
    to_front(t.at, Below{above, below, code, load_u64(fb + L.if_previous)},
             [](const Below& a, const Below& b) { return a.above == b.above; });
}

// The frame that called the suspended generator at `gen` when `above` was walked just before it,
// or 0 when not known: the generator must have been seen entered from C, and the chunk copy must
// hold, where the frame under such a callee was, a frame of the same code with the same caller.
uint64_t InterpreterWalker::entered_below(uint64_t gen, uint64_t gen_code, uint64_t above) const {
    const Gen& g = entered_[mix64(0, gen) % kEntered];
    if (g.frame != gen || g.code != gen_code) return 0;
    const EntryBelow& t = entry_below_[thread_slot(ts_addr_)];
    if (t.tstate != ts_addr_) return 0;
    for (const Below& b : t.at) {
        if (b.above != above || b.frame == 0 || !within(b.frame, L.if_size, chunk_lo_, chunk_hi_)) continue;
        const uint8_t* fb = chunk_.data() + (b.frame - chunk_lo_);
        if (static_cast<signed char>(fb[L.if_owner]) == L.owner_thread && code_of(b.frame, fb) == b.code &&
            load_u64(fb + L.if_previous) == b.prev)
            return b.frame;
    }
    return 0;
}

// The instruction pointer must point into this code object's own bytecode.
bool InterpreterWalker::instruction_bytes(const Walked& w, const uint8_t* code, int64_t& bytes) const {
    int64_t units = load_i64(code + L.ob_size);
    int64_t off = static_cast<int64_t>(w.instr - (w.code + L.co_code_adaptive));
    // off / 2, not units * 2: a torn or reused header can hold any ob_size, and the product
    // would overflow (undefined behaviour, found by tests/native/fuzz_readers.cpp).
    if (units <= 0 || (off & 1) != 0 || off < -2 || off / 2 >= units) return false;
    bytes = off < 0 ? -1 : off;
    return true;
}

// A frame from the chunk copy when it lies there, else from a copy of the older chunk it lies in,
// else read on its own.
const uint8_t* InterpreterWalker::frame_bytes(uint64_t addr) {
    if (within(addr, L.if_size, chunk_lo_, chunk_hi_)) return chunk_.data() + (addr - chunk_lo_);
    if (within(addr, L.if_size, older_lo_, older_hi_) || copy_older_chunk(addr))
        return older_.data() + (addr - older_lo_);
    outside_ = true;
    seen_->met(addr);
    if (const uint8_t* fb = batch_copy(addr)) return fb;
    if (pf_later_) {
        pf_later_ = false;
        struct iovec* l = cap_.local_.data();
        struct iovec* r = cap_.remote_.data();
        l[0] = {frame_.data(), L.if_size};
        r[0] = {reinterpret_cast<void*>(addr), L.if_size};
        const size_t copied = cap_.reader_.readv_prefix(l, r, 1 + cap_.add_prefetch(ts_addr_, &l[1], &r[1]));
        cap_.prefetch_done(L.if_size, copied);
        return copied >= L.if_size ? frame_.data() : nullptr;
    }
    if (!cap_.reader_.read(addr, frame_.data(), L.if_size)) return nullptr;
    return frame_.data();
}

// A deep stack spans several chunks, and the walk goes from each into the one before it, whose
// address the copied header gave. That chunk's frames all lie below the first one met there, so
// one read from its start to that frame copies them all: a read per chunk, not per frame.
bool InterpreterWalker::copy_older_chunk(uint64_t addr) {
    const uint64_t c = older_next_;
    older_lo_ = older_hi_ = older_next_ = 0;
    // Nothing may wrap: both addresses may come from a torn copy.
    if (!plausible(c) || !plausible(addr) || addr < c + L.chunk_header || addr - c >= (1ull << 30)) return false;
    const uint64_t hi = addr + L.if_size;
    const uint64_t lo = std::max<uint64_t>(c, hi > kChunkCopy ? hi - kChunkCopy : 0);
    if (!cap_.reader_.read(lo, older_.data(), hi - lo)) return false;
    older_lo_ = lo;
    older_hi_ = hi;
    if (lo == c) older_next_ = load_u64(older_.data() + L.chunk_previous);
    return true;
}

// True when every frame of the copy from `from` down to (not including) `ancestor` still holds a
// code object.
bool InterpreterWalker::frames_intact(uint64_t from, uint64_t ancestor) const {
    for (int hops = 0; hops < 32 && from != ancestor; ++hops) {
        if (!within(from, L.if_size, chunk_lo_, chunk_hi_)) return false;
        const uint8_t* fb = chunk_.data() + (from - chunk_lo_);
        if (code_of(from, fb) == 0) return false;
        from = load_u64(fb + L.if_previous);
    }
    return true;
}

// The code object of the frame at `addr`, copied in `fb`: its untagged code field, or for a 3.14
// frame that returned during the copy, the code its instruction pointer lies in.
uint64_t InterpreterWalker::code_of(uint64_t addr, const uint8_t* fb) const {
    if (addr == returned_ && returned_ != 0) return returned_code_;
    return load_u64(fb + L.if_code) & ~L.if_code_tag_mask;
}

// True when `from`'s callers in the chunk copy reach `target` within a few frames. With
// `read_outside`, a frame outside the copy (a running coroutine's, or the entry record on the C
// stack that resumed it) has its link read now: a thread that went from the event loop's code
// into a task has the task's frames between the two, and without them a walk taken as it entered
// a task is torn and taken again inside the task's work, which then gets the loop's share. (Only
// to confirm the thread went deeper: a thread that returned through such frames has left them.)
bool InterpreterWalker::descends_to(uint64_t from, uint64_t target, bool read_outside) {
    int outside = 0;
    // The frames the thread pushed above `target` after the chunk was copied are not in the copy,
    // whose bytes there are those of calls that have returned: that part is read again. A target
    // in it that still runs the same code under the same caller was not left: the thread went
    // deeper, however far it has gone by now (into a task and out of it again, say).
    uint64_t fresh_lo = chunk_hi_;
    if (read_outside && chunk_hi_ != 0) {
        const bool in_chunk = within(target, L.if_size, chunk_lo_, chunk_hi_);
        fresh_lo = in_chunk ? target : std::max(chunk_lo_, chunk_hi_ - std::min(chunk_hi_, kTopFirst + kChunkSlack));
        if (!cap_.reader_.read(fresh_lo, fresh_.data(), chunk_hi_ - fresh_lo)) return false;
        if (in_chunk) {
            const uint8_t* was = chunk_.data() + (target - chunk_lo_);
            const uint64_t code = load_u64(was + L.if_code);
            if (plausible(code & ~L.if_code_tag_mask) && code == load_u64(fresh_.data() + L.if_code) &&
                load_u64(was + L.if_previous) == load_u64(fresh_.data() + L.if_previous))
                return true;
        }
    }
    for (int hops = 0; hops < 32 && from != 0; ++hops) {
        if (from == target) return true;
        if (within(from, L.if_size, fresh_lo, chunk_hi_)) {
            from = load_u64(fresh_.data() + (from - fresh_lo) + L.if_previous);
            continue;
        }
        if (within(from, L.if_size, chunk_lo_, chunk_hi_)) {
            from = load_u64(chunk_.data() + (from - chunk_lo_) + L.if_previous);
            continue;
        }
        uint64_t prev = 0;
        if (!read_outside || ++outside > kOutsideLinks || !plausible(from) || !cap_.reader_.read(from + L.if_previous, &prev, sizeof prev))
            return false;
        from = prev;
    }
    return false;
}

// The batch's copy of a frame outside the chunk, if it took one.
const uint8_t* InterpreterWalker::batch_copy(uint64_t addr) const {
    for (size_t i = 0; i < batch_n_; ++i)
        if (batch_at_[i] == addr) return outside_copy_.data() + i * L.if_size;
    return nullptr;
}

// 3.12: which of the two records named before and after the current frames were read was current
// when they were: the read of the thread state's pointer and theirs lie a microsecond or more apart
// (each range pins its page), time enough for a thread to go from the event loop into a task's
// work or back. Of the two, the inner one (lower on the C stack) was current if its slot held a
// frame: one not yet entered or already left holds a stale value, no pointer or its own entry
// frame beside it on the C stack. Taking the record named first charges both of those crossings to
// the loop's step, and a task's work loses their share. 3.11's left record holds a frame like any
// other, so there the first stays the anchor.
size_t InterpreterWalker::record_at_reads(const uint64_t* cand, const uint64_t* first, size_t m, size_t named,
                                          uint64_t mid) const {
    if (L.trampoline_code == 0) return named;
    size_t after = 0;
    while (after < m && cand[after] != mid) ++after;
    const uint64_t a = cand[named];
    if (after == m || (a > mid ? a - mid : mid - a) >= kRecordSpan) return named;
    const size_t inner = a < mid ? named : after, outer = a < mid ? after : named;
    const uint64_t f = first[inner], rec = cand[inner];
    return plausible(f) && (f > rec ? f - rec : rec - f) >= kEntryNear ? inner : outer;
}

// Puts `cf` first among the records remembered, the oldest one dropped when it is new.
void InterpreterWalker::saw_cframe(Cframes& known, uint64_t cf) {
    to_front(known.at, cf, [](uint64_t a, uint64_t b) { return a == b; });
}

void InterpreterWalker::Outside::met(uint64_t addr) {
    size_t i = 0;
    while (i < n && at[i] != addr) ++i;
    if (i == n) {
        if (n < kOutsideKnown) {
            ++n;
        } else {  // the one met longest ago makes room
            i = 0;
            for (size_t j = 1; j < n; ++j) if (age[j] > age[i]) i = j;
        }
        at[i] = addr;
        hits[i] = 0;
    }
    hits[i] = static_cast<uint8_t>(std::min(hits[i] + 1, 255));
    age[i] = 0;
}

void InterpreterWalker::Outside::older() {
    size_t k = 0;
    for (size_t i = 0; i < n; ++i) {
        if (++age[i] > kOutsideAge) continue;
        at[k] = at[i];
        hits[k] = hits[i];
        age[k++] = age[i];
    }
    n = k;
}

std::unique_ptr<FrameWalker> make_interpreter_walker(FrameCapture& capture) {
    return std::unique_ptr<FrameWalker>(new InterpreterWalker(capture));
}

}  // namespace spprof
