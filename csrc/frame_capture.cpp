#include "frame_capture.h"

#include <algorithm>

#include "code_identity.h"

namespace spprof {

const char* const kTornReasonNames[kTornReasons] = {
    "torn_pointer", "torn_unreadable", "torn_not_frame", "torn_not_running", "torn_suspended",
    "torn_not_code", "torn_instruction", "torn_top_moved", "torn_anchor"};

namespace {
constexpr size_t kChunkCopy = 256 * 1024;
constexpr uint64_t kChunkSlack = 2048;
constexpr uint64_t kTopFirst = 1024;  // bytes below the copied top that are read before the rest
constexpr int kAnchorRetries = 2;     // batches taken again when the 3.11/3.12 cframe moved
constexpr int kQuickRetries = 2;      // torn walks taken again at once
constexpr int kChainLookahead = 16; // frames popped since the last tick that are skipped over
constexpr size_t kPrefetch = 32;    // code objects of a thread's last sample read ahead

bool plausible(uint64_t p) { return p != 0 && (p & 7) == 0 && p < kMaxAddr; }
// True when the `size` bytes at `addr` lie in [lo, hi). Written so that nothing can wrap: `addr`
// may come from a torn copy, and `addr + size <= hi` let a caller field of ~0 through to a wild
// read (found by tests/native/fuzz_readers.cpp).
bool within(uint64_t addr, uint64_t size, uint64_t lo, uint64_t hi) {
    return addr >= lo && addr < hi && hi - addr >= size;
}
}  // namespace

FrameCapture::FrameCapture(const spprof_layout& layout, SafeReader& reader, int max_depth)
    : L(layout), reader_(reader), max_depth_(max_depth), max_hops_(max_depth * 4 + 256) {
    chunk_.resize(kChunkCopy);
    older_.resize(kChunkCopy);
    frame_.resize(std::max<size_t>(L.if_size, L.fo_size) + 64);
    walked_.resize(static_cast<size_t>(max_depth));
    unique_.resize(static_cast<size_t>(max_depth));
    codes_.resize(static_cast<size_t>(max_depth) * L.co_size);
    code_at_.resize(static_cast<size_t>(max_depth));
    name_at_.resize(static_cast<size_t>(max_depth));
    prefetch_.resize(kChainSlots);
    for (Prefetch& p : prefetch_) { p.codes.resize(kPrefetch); p.names.resize(kPrefetch); }
    pf_codes_.resize(kPrefetch * L.co_size);
    pf_names_.resize(kPrefetch * kNameProbe);
    local_.resize(static_cast<size_t>(max_depth) + 2 * kPrefetch + 4);
    remote_.resize(static_cast<size_t>(max_depth) + 2 * kPrefetch + 4);
    if (L.frame_model == SPPROF_FRAMES_OBJECTS) {
        frame_need_ = std::max({L.fo_back, L.fo_code, L.fo_lasti, L.fo_state, L.fo_gen}) + 8;
        spec_.resize(static_cast<size_t>(max_depth) * frame_need_);
        chain_now_.resize(static_cast<size_t>(max_depth));
        chains_.resize(kChainSlots);
        for (Chain& c : chains_) c.addrs.resize(static_cast<size_t>(max_depth));
    }
    names_.resize(static_cast<size_t>(max_depth) * kNameProbe);  // for the code objects that need theirs
}

Capture FrameCapture::capture(uint64_t ts_addr, const uint8_t* ts, FrameRecord* out, int& depth, bool& truncated) {
    int n = 0;
    truncated = false;
    pf_ = nullptr;
    pf_ready_ = false;
    // A walk through a generator's frame reads that frame after the consistent copy, and the
    // generator may have suspended in between: such a walk is taken again at once, before the
    // thread moves further from where its state was copied.
    Capture c = Capture::Torn;
    for (int attempt = 0; c == Capture::Torn && attempt <= kQuickRetries; ++attempt) {
        n = 0;
        truncated = false;
        c = L.frame_model == SPPROF_FRAMES_OBJECTS ? walk_objects(ts_addr, ts, n, truncated)
                                                   : walk_interpreter(ts_addr, ts, n, truncated);
        Prefetch& slot = prefetch_[thread_slot(ts_addr)];
        if (slot.tstate == ts_addr) slot.outside = outside_;
    }
    depth = 0;
    if (c != Capture::Ok) return c;
    if (n == 0) return Capture::Empty;
    c = resolve_codes(ts_addr, n, out);
    if (c != Capture::Ok) return c;
    if (check_top_ && !top_unchanged()) return reject(kTornTopMoved);
    depth = n;
    return Capture::Ok;
}

// 3.9/3.10: heap-allocated PyFrameObjects linked by f_back. A thread's callers rarely change
// between ticks, so the frames of its last chain are read again in one system call first; only
// frames that are not among them (new calls) are read on their own.
Capture FrameCapture::walk_objects(uint64_t ts_addr, const uint8_t* ts, int& n, bool& truncated) {
    check_top_ = true;
    uint64_t f = load_u64(ts + L.ts_frame);
    if (f == 0) return Capture::Empty;
    const size_t need = frame_need_;
    Chain& last = chains_[thread_slot(ts_addr)];
    int known = 0;
    size_t k = 0;
    if (last.tstate == ts_addr) {
        for (int i = 0; i < last.n; ++i, ++k) {
            local_[k] = {spec_.data() + static_cast<size_t>(i) * need, need};
            remote_[k] = {reinterpret_cast<void*>(last.addrs[static_cast<size_t>(i)]), need};
        }
    }
    const size_t main_bytes = k * need;
    size_t total = k + add_prefetch(ts_addr, local_.data() + k, remote_.data() + k);
    if (total > 0) {
        size_t copied = reader_.readv_prefix(local_.data(), remote_.data(), total);
        if (copied >= main_bytes) known = static_cast<int>(k);
        prefetch_done(main_bytes, copied);
    }
    int cursor = 0;
    for (int hops = 0; f != 0; ++hops) {
        if (!plausible(f) || hops > max_hops_) return reject(kTornPointer);
        if (n == max_depth_) { truncated = true; break; }
        const uint8_t* fb = nullptr;
        for (int j = cursor; j < known && j < cursor + kChainLookahead; ++j) {
            if (last.addrs[static_cast<size_t>(j)] == f) {
                fb = spec_.data() + static_cast<size_t>(j) * need;
                cursor = j + 1;
                break;
            }
        }
        if (fb == nullptr) {
            if (!reader_.read(f, frame_.data(), need)) return reject(kTornUnreadable);
            fb = frame_.data();
        }
        if (load_u64(fb + L.ob_type) != L.frame_type) return reject(kTornNotFrame);
        // Every caller in a live chain is executing. The innermost frame may be just entering or
        // leaving; but one that belongs to a generator and has no caller was suspended under us.
        bool running = static_cast<signed char>(fb[L.fo_state]) == L.fo_running;
        if (!running && n > 0) return reject(kTornNotRunning);
        if (!running && load_u64(fb + L.fo_gen) != 0 && load_u64(fb + L.fo_back) == 0) return reject(kTornSuspended);
        int64_t lasti = load_i32(fb + L.fo_lasti);
        if (lasti < -1) return reject(kTornInstruction);
        int64_t instr = lasti < 0 ? -1 : (L.fo_lasti_in_units ? lasti * 2 : lasti);
        if (n == 0) remember_top(f + L.fo_code, f + L.fo_back, fb + L.fo_code, fb + L.fo_back);
        chain_now_[static_cast<size_t>(n)] = f;
        walked_[static_cast<size_t>(n++)] = {load_u64(fb + L.fo_code), static_cast<uint64_t>(instr)};
        f = load_u64(fb + L.fo_back);
    }
    last.tstate = ts_addr;
    last.n = n;
    std::copy(chain_now_.begin(), chain_now_.begin() + n, last.addrs.begin());
    return Capture::Ok;
}

// A frame from the chunk copy when it lies there, else from a copy of the older chunk it lies in,
// else read on its own.
const uint8_t* FrameCapture::frame_bytes(uint64_t addr) {
    if (within(addr, L.if_size, chunk_lo_, chunk_hi_)) return chunk_.data() + (addr - chunk_lo_);
    if (within(addr, L.if_size, older_lo_, older_hi_) || copy_older_chunk(addr))
        return older_.data() + (addr - older_lo_);
    outside_ = true;
    if (pf_later_) {
        pf_later_ = false;
        local_[0] = {frame_.data(), L.if_size};
        remote_[0] = {reinterpret_cast<void*>(addr), L.if_size};
        const size_t copied = reader_.readv_prefix(local_.data(), remote_.data(), 1 + add_prefetch(ts_addr_, &local_[1], &remote_[1]));
        prefetch_done(L.if_size, copied);
        return copied >= L.if_size ? frame_.data() : nullptr;
    }
    if (!reader_.read(addr, frame_.data(), L.if_size)) return nullptr;
    return frame_.data();
}

// A deep stack spans several chunks, and the walk goes from each into the one before it, whose
// address the copied header gave. That chunk's frames all lie below the first one met there, so
// one read from its start to that frame copies them all: a read per chunk, not per frame.
bool FrameCapture::copy_older_chunk(uint64_t addr) {
    const uint64_t c = older_next_;
    older_lo_ = older_hi_ = older_next_ = 0;
    // Nothing may wrap: both addresses may come from a torn copy.
    if (!plausible(c) || !plausible(addr) || addr < c + L.chunk_header || addr - c >= (1ull << 30)) return false;
    const uint64_t hi = addr + L.if_size;
    const uint64_t lo = std::max<uint64_t>(c, hi > kChunkCopy ? hi - kChunkCopy : 0);
    if (!reader_.read(lo, older_.data(), hi - lo)) return false;
    older_lo_ = lo;
    older_hi_ = hi;
    if (lo == c) older_next_ = load_u64(older_.data() + L.chunk_previous);
    return true;
}

// 3.11+: _PyInterpreterFrames, mostly in the thread's current stack chunk. The current-frame
// pointer, the used part of the chunk and the pointer again are copied in one system call. When
// the two reads agree, the chunk was copied while that frame stayed current. When they differ, the
// thread called or returned during the copy; the copy is still one consistent stack if either
// frame is an ancestor of the other in it (the thread only went deeper, or only returned), and
// torn otherwise. Requiring equality would drop nearly every sample taken inside a short call.
Capture FrameCapture::walk_interpreter(uint64_t ts_addr, const uint8_t* ts, int& n, bool& truncated) {
    moved_to_ = 0;
    // 3.11/3.12 keep the current frame in a _PyCFrame on the C stack of the innermost evaluation
    // loop, and every generator or coroutine resumed from C starts a new one: the thread state's
    // copy may name one already left, whose stale slot holds an outer or dead frame. The cframe
    // pointer is read before and after the anchor in the same batch, and the batch is taken again
    // from the newer cframe when it moved.
    const bool via_cframe = L.frame_model == SPPROF_FRAMES_CFRAME;
    uint64_t cframe = via_cframe ? load_u64(ts + L.ts_frame) : 0;
    if (via_cframe && cframe == 0) return Capture::Empty;
    if (via_cframe && !plausible(cframe)) return reject(kTornPointer);
    uint64_t anchor = via_cframe ? cframe + L.cframe_current_frame : ts_addr + L.ts_frame;

    chunk_lo_ = chunk_hi_ = 0;
    older_lo_ = older_hi_ = older_next_ = 0;
    // A thread whose last stack left the chunk (a generator's or coroutine's frame) reads the code
    // objects ahead with that frame, not with the chunk: a long batch would let the generator
    // suspend before its frame is read, and the walk be torn.
    const Prefetch& slot = prefetch_[thread_slot(ts_addr)];
    pf_later_ = slot.tstate == ts_addr && slot.outside;
    ts_addr_ = ts_addr;
    outside_ = false;
    uint64_t f = 0;
    uint64_t chunk = load_u64(ts + L.ts_datastack_chunk);
    uint64_t top = load_u64(ts + L.ts_datastack_top);
    uint64_t limit = load_u64(ts + L.ts_datastack_limit);
    for (int attempt = 0; plausible(chunk) && top > chunk && limit >= top && limit - chunk < (1ull << 30); ++attempt) {
        if (!plausible(cframe) && via_cframe) return reject(kTornPointer);
        anchor = via_cframe ? cframe + L.cframe_current_frame : anchor;
        // Frames pushed since the thread state was copied lie just above top: take some of them too.
        uint64_t hi = std::min(limit, top + kChunkSlack);
        // From the chunk's start when it fits: its header links to the older chunk.
        uint64_t lo = std::max<uint64_t>(chunk, hi > kChunkCopy ? hi - kChunkCopy : 0);
        uint64_t again = 0, cf_before = cframe, cf_after = cframe;
        struct iovec* l = local_.data();
        struct iovec* r = remote_.data();
        size_t k = 0;
        void* const cf_addr = reinterpret_cast<void*>(ts_addr + L.ts_frame);
        if (via_cframe) { l[k] = {&cf_before, 8}; r[k++] = {cf_addr, 8}; }
        l[k] = {&f, 8};
        r[k++] = {reinterpret_cast<void*>(anchor), 8};
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
        l[k] = {&again, 8};
        r[k++] = {reinterpret_cast<void*>(anchor), 8};
        if (via_cframe) { l[k] = {&cf_after, 8}; r[k++] = {cf_addr, 8}; }
        const size_t main_bytes = 8 * static_cast<size_t>(2 + 2 * via_cframe) + (hi - lo);
        size_t total = k + (pf_later_ ? 0 : add_prefetch(ts_addr, l + k, r + k));
        size_t copied = reader_.readv_prefix(l, r, total);
        prefetch_done(main_bytes, copied);
        if (copied < main_bytes) break;
        if (cf_before != cframe || cf_after != cframe) {
            if (attempt == kAnchorRetries) return reject(kTornAnchor);
            cframe = cf_after;
            continue;
        }
        moved_to_ = again;
        chunk_lo_ = lo;
        chunk_hi_ = hi;
        if (lo == chunk) older_next_ = load_u64(chunk_.data() + L.chunk_previous);
        break;
    }
    if (chunk_hi_ == 0 && !reader_.read(anchor, &f, sizeof f)) return reject(kTornUnreadable);
    if (f == 0) return Capture::Empty;
    // The thread returned during the copy: the frames it left may already be cleared in the copy
    // (3.14 clears f_executable before popping), so start from where it returned to.
    if (moved_to_ != 0 && descends_to(f, moved_to_) && !frames_intact(f, moved_to_)) {
        f = moved_to_;
        moved_to_ = 0;
    }
    const uint64_t first_frame = f;
    // Only an innermost frame outside the consistent copy (a generator's) needs the re-read.
    check_top_ = !within(f, L.if_size, chunk_lo_, chunk_hi_);

    bool first = true;
    for (int hops = 0; f != 0; ++hops) {
        if (!plausible(f) || hops > max_hops_) return reject(kTornPointer);
        const uint8_t* fb = frame_bytes(f);
        if (fb == nullptr) return reject(kTornUnreadable);
        if (f == moved_to_) moved_to_ = 0;  // the thread returned to this ancestor: consistent
        int owner = static_cast<signed char>(fb[L.if_owner]);
        uint64_t prev = load_u64(fb + L.if_previous);
        if (first) { remember_top(f + L.if_code, f + L.if_previous, fb + L.if_code, fb + L.if_previous); first = false; }
        const uint64_t code = load_u64(fb + L.if_code) & ~L.if_code_tag_mask;
        // 3.12 writes an entry frame's code before its owner: one copied in between is a shim too
        bool shim = owner == L.owner_cstack || owner == L.owner_interpreter ||
                    (L.trampoline_code != 0 && code == L.trampoline_code);
        if (!shim) {
            if (n == max_depth_) { truncated = true; break; }
            walked_[static_cast<size_t>(n++)] = {code, load_u64(fb + L.if_instr)};
            // A suspended generator's frame has no caller: the chain changed under the walk.
            if (prev == 0 && owner == L.owner_generator) return reject(kTornSuspended);
        }
        f = prev;
    }
    if (moved_to_ != 0 && !descends_to(moved_to_, first_frame)) return reject(kTornTopMoved);
    return Capture::Ok;
}

// True when every frame of the copy from `from` down to (not including) `ancestor` still holds a
// code object.
bool FrameCapture::frames_intact(uint64_t from, uint64_t ancestor) const {
    for (int hops = 0; hops < 32 && from != ancestor; ++hops) {
        if (!within(from, L.if_size, chunk_lo_, chunk_hi_)) return false;
        const uint8_t* fb = chunk_.data() + (from - chunk_lo_);
        if ((load_u64(fb + L.if_code) & ~L.if_code_tag_mask) == 0) return false;
        from = load_u64(fb + L.if_previous);
    }
    return true;
}

// True when `from`'s callers in the chunk copy reach `target` within a few frames.
bool FrameCapture::descends_to(uint64_t from, uint64_t target) const {
    for (int hops = 0; hops < 32 && from != 0; ++hops) {
        if (from == target) return true;
        if (!within(from, L.if_size, chunk_lo_, chunk_hi_)) return false;
        from = load_u64(chunk_.data() + (from - chunk_lo_) + L.if_previous);
    }
    return false;
}


// Appends reads of the code objects (and name strings) of this thread's last sample.
size_t FrameCapture::add_prefetch(uint64_t ts_addr, struct iovec* l, struct iovec* r) {
    pf_ = &prefetch_[thread_slot(ts_addr)];
    pf_bytes_ = 0;
    if (pf_->tstate != ts_addr) {
        pf_->tstate = ts_addr;
        pf_->n = 0;
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
Capture FrameCapture::resolve_codes(uint64_t ts_addr, int n, FrameRecord* out) {
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
        if (L.frame_model == SPPROF_FRAMES_OBJECTS) {
            instr = static_cast<int64_t>(w.instr);
        } else {
            // The instruction pointer must point into this code object's own bytecode.
            int64_t units = load_i64(cb + L.ob_size);
            int64_t off = static_cast<int64_t>(w.instr - (w.code + L.co_code_adaptive));
            // off / 2, not units * 2: a torn or reused header can hold any ob_size, and the product
            // would overflow (undefined behaviour, found by tests/native/fuzz_readers.cpp).
            if (units <= 0 || (off & 1) != 0 || off < -2 || off / 2 >= units) return reject(kTornInstruction);
            instr = off < 0 ? -1 : off;
        }
        FrameRecord& r = out[i];
        r.code = w.code;
        r.fingerprint = code_fingerprint(L, cb, name_at_[k], name_at_[k] ? name_probe_len(L, name_address(L, cb)) : 0);
        r.instr_bytes = instr;
        r.reserved = 0;
    }

    // What this sample ran is what the next one reads ahead.
    Prefetch& p = prefetch_[thread_slot(ts_addr)];
    p.tstate = ts_addr;
    p.n = static_cast<int>(std::min(u, kPrefetch));
    for (size_t i = 0; i < static_cast<size_t>(p.n); ++i) {
        p.codes[i] = unique_[i];
        p.names[i] = fingerprint_needs_name(L, code_at_[i]) ? name_address(L, code_at_[i]) : 0;
    }
    return Capture::Ok;
}

void FrameCapture::remember_top(uint64_t code_addr, uint64_t prev_addr, const uint8_t* code, const uint8_t* prev) {
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
    struct iovec l[2] = {{&now[0], 8}, {&now[1], 8}};
    struct iovec r[2] = {{reinterpret_cast<void*>(top_addr_[0]), 8}, {reinterpret_cast<void*>(top_addr_[1]), 8}};
    if (!reader_.readv(l, r, 2)) return false;
    return now[0] == top_seen_[0] && now[1] == top_seen_[1];
}

}  // namespace spprof
