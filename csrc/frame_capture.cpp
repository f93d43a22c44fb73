#include "frame_capture.h"

#include <algorithm>
#include <cstring>

#include "code_identity.h"

namespace spprof {

const char* const kTornReasonNames[kTornReasons] = {
    "torn_pointer", "torn_unreadable", "torn_not_frame", "torn_not_running", "torn_suspended",
    "torn_not_code", "torn_instruction", "torn_top_moved", "torn_anchor",
    "torn_other_thread"};

namespace {
constexpr int kQuickRetries = 2;    // torn walks taken again at once
constexpr size_t kPrefetch = 32;    // code objects of a thread's last sample read ahead
constexpr size_t kRefFrames = 128;  // outermost frames of a thread's last whole chain kept (Prefetch)
}  // namespace

FrameCapture::FrameCapture(const spprof_layout& layout, SafeReader& reader, int max_depth)
    : L(layout), reader_(reader), max_depth_(max_depth), max_hops_(max_depth * 4 + 256) {
    walked_.resize(static_cast<size_t>(max_depth));
    unique_.resize(static_cast<size_t>(max_depth));
    codes_.resize(static_cast<size_t>(max_depth) * L.co_size);
    code_at_.resize(static_cast<size_t>(max_depth));
    name_at_.resize(static_cast<size_t>(max_depth));
    prefetch_.resize(kChainSlots);
    ref_.resize(static_cast<size_t>(max_depth));
    torn_top_.resize(static_cast<size_t>(max_depth));
    for (Prefetch& p : prefetch_) {
        p.codes.resize(kPrefetch);
        p.names.resize(kPrefetch);
        p.chain.resize(kRefFrames);
    }
    pf_codes_.resize(kPrefetch * L.co_size);
    pf_names_.resize(kPrefetch * kNameProbe);
    // a walker's batch: the read-ahead and reads of its own
    local_.resize(static_cast<size_t>(max_depth) + 2 * kPrefetch + kWalkerReads);
    remote_.resize(static_cast<size_t>(max_depth) + 2 * kPrefetch + kWalkerReads);
    names_.resize(static_cast<size_t>(max_depth) * kNameProbe);  // for the code objects that need theirs
    walker_ = L.frame_model == SPPROF_FRAMES_OBJECTS ? make_object_walker(*this) : make_interpreter_walker(*this);
}

Capture FrameCapture::capture(uint64_t ts_addr, const uint8_t* ts, FrameRecord* out, int& depth, bool& truncated) {
    int n = 0;
    truncated = false;
    pf_ = nullptr;
    pf_ready_ = false;
    // A walk through a generator's frame may read that frame after the consistent copy, and the
    // generator may have suspended in between: such a walk is taken again at once, before the
    // thread moves further from where its state was copied.
    Capture c = Capture::Torn;
    for (int attempt = 0; c == Capture::Torn && attempt <= kQuickRetries; ++attempt) {
        n = 0;
        truncated = false;
        met_generator_ = false;
        whole_ = false;
        blind_ = false;
        c = walker_->walk(ts_addr, ts, n, truncated);
        Prefetch& slot = prefetch_[thread_slot(ts_addr)];
        if (slot.tstate == ts_addr) slot.outside = walker_->left_copy();
        if (c == Capture::Torn) note_tear(ts_addr, n);
    }
    depth = 0;
    if (c != Capture::Ok) return c;
    if (n == 0) return Capture::Empty;
    // Checked before the code objects are read: those live on, the frames do not, and the
    // shorter the time the innermost frame is watched the less a call-heavy thread is walked again.
    if (check_top_ && !top_unchanged()) c = reject(kTornTopMoved);
    if (c == Capture::Ok) c = resolve_codes(ts_addr, n, out);
    if (c == Capture::Ok && !walker_->still_the_threads(n)) c = reject(kTornOtherThread);
    if (c != Capture::Ok) {
        note_tear(ts_addr, n);
        return c;
    }
    depth = n;
    remember_chain(ts_addr, n, truncated);
    return Capture::Ok;
}

// The first torn copy of the tick is the one read at the sample's time, if it can tell where the
// thread was then. One whose first frame came through a record the thread was leaving, or whose
// frames hold something that is no code object (a frame slot reused before it was copied), cannot:
// cut against it, a walk taken again lost what the thread ran, and as the thread leaves a record
// or a slot at the end of a call, that was mostly the long work the call did (3.11, a pipeline of
// generators at 10 ms: leaf_work 2-3 points under its share, single runs to 6.5; bench/RESULTS.md).
void FrameCapture::note_tear(uint64_t ts_addr, int n) {
    if (ref_n_ >= 0 || blind_) return;
    for (int i = 0; i < n; ++i)
        if (!plausible(walked_[static_cast<size_t>(i)].code)) return;
    torn_n_ = n;
    std::copy(walked_.begin(), walked_.begin() + n, torn_top_.begin());
    if (whole_ && n > 0) {
        ref_n_ = n;
        std::reverse_copy(walked_.begin(), walked_.begin() + n, ref_.begin());
        return;
    }
    const Prefetch& last = prefetch_[thread_slot(ts_addr)];
    ref_n_ = last.tstate == ts_addr ? last.chain_n : 0;
    std::copy(last.chain.begin(), last.chain.begin() + ref_n_, ref_.begin());
}

void FrameCapture::remember_chain(uint64_t ts_addr, int n, bool truncated) {
    Prefetch& last = prefetch_[thread_slot(ts_addr)];  // resolve_codes made it this thread's
    last.chain_n = truncated ? 0 : std::min(n, static_cast<int>(kRefFrames));
    std::reverse_copy(walked_.begin() + (n - last.chain_n), walked_.begin() + n, last.chain.begin());
}

int FrameCapture::settle_after_tear(FrameRecord* out, int depth, bool truncated) const {
    if (ref_n_ < 0 || truncated) return -1;
    // By function, not by frame: an event loop's tasks run the same coroutine code in frames of
    // their own, and a walk torn in one task and taken again in the next is charged the same
    // functions either way (3.10, 50 tasks: the task's frame was `<unknown>` in a fifth of the
    // work's samples).
    auto same = [](const FrameRecord& r, const Walked& w) { return r.code == w.code; };
    int outer = 0, inner = 0;
    while (outer < depth && outer < ref_n_ && same(out[depth - 1 - outer], ref_[static_cast<size_t>(outer)])) ++outer;
    while (inner < depth - outer && inner < torn_n_ && same(out[inner], torn_top_[static_cast<size_t>(inner)])) ++inner;
    if (outer == depth && outer == ref_n_) return -1;           // the same chain
    if (inner > 0 && inner + outer == depth) return -1;         // the same frames, both ends
    // Nothing to hold it against (a thread's first walk, or one whose last ended at a suspended
    // generator): "<unknown>" alone would say less than the stack found.
    if (ref_n_ == 0 && inner == 0) return -1;
    outer = std::min(outer, max_depth_ - 1 - inner);  // a whole chain of max_depth frames and the record
    std::memmove(out + inner + 1, out + (depth - outer), static_cast<size_t>(outer) * sizeof(FrameRecord));  // may overlap
    out[inner] = FrameRecord{0, 0, kUnknownRecord, 0};
    return inner + 1 + outer;
}

// Appends reads of the code objects (and name strings) of this thread's last sample.
size_t FrameCapture::add_prefetch(uint64_t ts_addr, struct iovec* l, struct iovec* r) {
    pf_ = &prefetch_[thread_slot(ts_addr)];
    pf_bytes_ = 0;
    if (pf_->tstate != ts_addr) {
        pf_->tstate = ts_addr;
        pf_->n = pf_->chain_n = 0;
        pf_->outside = false;
    }
    size_t k = 0;
    for (int i = 0; i < pf_->n; ++i) {
        size_t j = static_cast<size_t>(i);
        l[k] = {pf_codes_.data() + j * L.co_size, L.co_size};
        r[k++] = {reinterpret_cast<void*>(pf_->codes[j]), L.co_size};
        pf_bytes_ += L.co_size;
        if (pf_->names[j] != 0) {
            size_t len = name_probe_len(L, pf_->names[j]);
            l[k] = {pf_names_.data() + j * kNameProbe, len};
            r[k++] = {reinterpret_cast<void*>(pf_->names[j]), len};
            pf_bytes_ += len;
        }
    }
    return k;
}

void FrameCapture::prefetch_done(size_t main_bytes, size_t copied) {
    pf_ready_ = pf_ != nullptr && pf_->n > 0 && copied == main_bytes + pf_bytes_;
}

// Every distinct code object of the stack, from the prefetch where it was read ahead and in one
// batched read otherwise; then the per-frame checks.
bool FrameCapture::resolve(const Walked* frames, int n, FrameRecord* out) {
    if (n <= 0 || n > max_depth_) return false;
    std::copy(frames, frames + n, walked_.begin());
    pf_ready_ = false;
    return resolve_codes(0, n, out, false) == Capture::Ok;
}

Capture FrameCapture::resolve_codes(uint64_t ts_addr, int n, FrameRecord* out, bool thread) {
    size_t u = 0;
    for (int i = 0; i < n; ++i) {
        uint64_t c = walked_[static_cast<size_t>(i)].code;
        if (!plausible(c)) return reject(kTornPointer);
        unique_[u++] = c;
    }
    std::sort(unique_.begin(), unique_.begin() + static_cast<long>(u));
    u = static_cast<size_t>(std::unique(unique_.begin(), unique_.begin() + static_cast<long>(u)) - unique_.begin());

    size_t m = 0;
    for (size_t i = 0; i < u; ++i) {
        code_at_[i] = name_at_[i] = nullptr;
        for (int j = 0; pf_ready_ && j < pf_->n; ++j) {
            size_t jj = static_cast<size_t>(j);
            if (pf_->codes[jj] != unique_[i]) continue;
            const uint8_t* cb = pf_codes_.data() + jj * L.co_size;
            // The name read ahead counts only if the code object still points at it.
            const bool name = fingerprint_needs_name(L, cb);
            if (name && (name_address(L, cb) != pf_->names[jj])) break;
            code_at_[i] = cb;
            if (name) name_at_[i] = pf_names_.data() + jj * kNameProbe;
            break;
        }
        if (code_at_[i] == nullptr) {
            local_[m] = {codes_.data() + i * L.co_size, L.co_size};
            remote_[m++] = {reinterpret_cast<void*>(unique_[i]), L.co_size};
            code_at_[i] = codes_.data() + i * L.co_size;
        }
    }
    if (m > 0 && !reader_.readv(local_.data(), remote_.data(), m)) return reject(kTornUnreadable);
    {
        size_t k = 0;
        for (size_t i = 0; i < u; ++i) {
            if (name_at_[i] != nullptr) continue;
            const uint8_t* cb = code_at_[i];
            if (!is_code_object(L, cb)) return reject(kTornNotCode);
            if (!fingerprint_needs_name(L, cb)) continue;
            uint64_t name = name_address(L, cb);
            if (!plausible(name)) return reject(kTornNotCode);
            size_t len = name_probe_len(L, name);
            local_[k] = {names_.data() + i * kNameProbe, len};
            remote_[k++] = {reinterpret_cast<void*>(name), len};
            name_at_[i] = names_.data() + i * kNameProbe;
        }
        if (k > 0 && !reader_.readv(local_.data(), remote_.data(), k)) return reject(kTornUnreadable);
    }

    for (int i = 0; i < n; ++i) {
        const Walked& w = walked_[static_cast<size_t>(i)];
        size_t k = static_cast<size_t>(std::lower_bound(unique_.begin(), unique_.begin() + static_cast<long>(u), w.code) - unique_.begin());
        const uint8_t* cb = code_at_[k];
        if (!is_code_object(L, cb)) return reject(kTornNotCode);
        int64_t instr;
        if (!walker_->instruction_bytes(w, cb, instr)) return reject(kTornInstruction);
        FrameRecord& r = out[i];
        r.code = w.code;
        r.fingerprint = code_fingerprint(L, cb, name_at_[k], name_at_[k] ? name_probe_len(L, name_address(L, cb)) : 0);
        r.instr_bytes = instr;
        r.frame = w.frame;
        // Only the innermost frame returns while it is read; an instruction check passed means
        // ob_size is positive.
        if (i == 0 && thread && L.if_code_cleared) {
            const uint64_t lo = w.code + L.co_code_adaptive;
            const uint64_t units = static_cast<uint64_t>(load_i64(cb + L.ob_size));
            if (units < (1ull << 28)) returned_.note(w.code, lo, lo + 2 * units);
        }
    }

    // What this sample ran is what the next one reads ahead.
    if (!thread) return Capture::Ok;
    Prefetch& p = prefetch_[thread_slot(ts_addr)];
    p.tstate = ts_addr;
    p.n = static_cast<int>(std::min(u, kPrefetch));
    for (size_t i = 0; i < static_cast<size_t>(p.n); ++i) {
        p.codes[i] = unique_[i];
        p.names[i] = fingerprint_needs_name(L, code_at_[i]) ? name_address(L, code_at_[i]) : 0;
    }
    return Capture::Ok;
}

void FrameCapture::remember_top(uint64_t code_addr, uint64_t prev_addr, const uint8_t* code, const uint8_t* prev,
                                uint64_t current_addr) {
    current_addr_ = current_addr;
    top_addr_[0] = code_addr;
    top_addr_[1] = prev_addr;
    top_seen_[0] = load_u64(code);
    top_seen_[1] = load_u64(prev);
}

// The innermost frame, read again after the walk, must still run the same code under the same
// caller. A thread that only went deeper or returned leaves it as it was; one that reused the
// frame's memory for another call changed it, and its copy may mix two stacks.
bool FrameCapture::top_unchanged() {
    uint64_t now[2] = {0, 0};
    current_now_ = 0;
    struct iovec l[3] = {{&now[0], 8}, {&now[1], 8}, {&current_now_, 8}};
    struct iovec r[3] = {{reinterpret_cast<void*>(top_addr_[0]), 8}, {reinterpret_cast<void*>(top_addr_[1]), 8},
                         {reinterpret_cast<void*>(current_addr_), 8}};
    if (!reader_.readv(l, r, current_addr_ != 0 ? 3 : 2)) return false;
    return now[0] == top_seen_[0] && now[1] == top_seen_[1];
}

}  // namespace spprof
