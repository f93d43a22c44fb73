#include "frame_capture.h"

#include <algorithm>

#include "code_identity.h"

namespace spprof {

namespace {
constexpr size_t kChunkCopy = 256 * 1024;
constexpr uint64_t kMaxAddr = 0x0000800000000000ull;  // user space on x86-64 and aarch64

bool plausible(uint64_t p) { return p != 0 && (p & 7) == 0 && p < kMaxAddr; }
}  // namespace

FrameCapture::FrameCapture(const spprof_layout& layout, SafeReader& reader, int max_depth)
    : L(layout), reader_(reader), max_depth_(max_depth), max_hops_(max_depth * 4 + 256) {
    chunk_.resize(kChunkCopy);
    frame_.resize(std::max<size_t>(L.if_size, L.fo_size) + 64);
    walked_.resize(static_cast<size_t>(max_depth));
    unique_.resize(static_cast<size_t>(max_depth));
    codes_.resize(static_cast<size_t>(max_depth) * L.co_size);
    local_.resize(static_cast<size_t>(max_depth) + 2);
    remote_.resize(static_cast<size_t>(max_depth) + 2);
}

Capture FrameCapture::capture(const uint8_t* ts, FrameRecord* out, int& depth, bool& truncated) {
    int n = 0;
    truncated = false;
    Capture c = L.frame_model == SPPROF_FRAMES_OBJECTS ? walk_objects(ts, n, truncated)
                                                       : walk_interpreter(ts, n, truncated);
    depth = 0;
    if (c != Capture::Ok) return c;
    if (n == 0) return Capture::Empty;
    c = resolve_codes(n, out);
    if (c != Capture::Ok) return c;
    if (!top_unchanged()) return Capture::Torn;
    depth = n;
    return Capture::Ok;
}

// 3.9/3.10: heap-allocated PyFrameObjects linked by f_back, one read each.
Capture FrameCapture::walk_objects(const uint8_t* ts, int& n, bool& truncated) {
    uint64_t f = load_u64(ts + L.ts_frame);
    if (f == 0) return Capture::Empty;
    const size_t need = std::max({L.fo_back, L.fo_code, L.fo_lasti, L.fo_state}) + 8;
    for (int hops = 0; f != 0; ++hops) {
        if (!plausible(f) || hops > max_hops_) return Capture::Torn;
        if (n == max_depth_) { truncated = true; break; }
        if (!reader_.read(f, frame_.data(), need)) return Capture::Torn;
        const uint8_t* fb = frame_.data();
        if (load_u64(fb + L.ob_type) != L.frame_type) return Capture::Torn;
        // A frame in a live chain is executing; a suspended generator's is not.
        if (static_cast<signed char>(fb[L.fo_state]) != L.fo_running) return Capture::Torn;
        int64_t lasti = load_i32(fb + L.fo_lasti);
        if (lasti < -1) return Capture::Torn;
        int64_t instr = lasti < 0 ? -1 : (L.fo_lasti_in_units ? lasti * 2 : lasti);
        if (n == 0) remember_top(f + L.fo_code, f + L.fo_back, fb + L.fo_code, fb + L.fo_back);
        walked_[static_cast<size_t>(n++)] = {load_u64(fb + L.fo_code), static_cast<uint64_t>(instr)};
        f = load_u64(fb + L.fo_back);
    }
    return Capture::Ok;
}

// A frame from the chunk copy when it lies there, else read on its own.
const uint8_t* FrameCapture::frame_bytes(uint64_t addr) {
    if (addr >= chunk_lo_ && addr + L.if_size <= chunk_hi_) return chunk_.data() + (addr - chunk_lo_);
    if (!reader_.read(addr, frame_.data(), L.if_size)) return nullptr;
    return frame_.data();
}

// 3.11+: _PyInterpreterFrames, mostly in the thread's current stack chunk, copied in one read.
Capture FrameCapture::walk_interpreter(const uint8_t* ts, int& n, bool& truncated) {
    uint64_t f;
    if (L.frame_model == SPPROF_FRAMES_CFRAME) {
        uint64_t cframe = load_u64(ts + L.ts_frame);
        if (cframe == 0) return Capture::Empty;
        if (!plausible(cframe)) return Capture::Torn;
        if (!reader_.read(cframe + L.cframe_current_frame, &f, sizeof f)) return Capture::Torn;
    } else {
        f = load_u64(ts + L.ts_frame);
    }
    if (f == 0) return Capture::Empty;

    chunk_lo_ = chunk_hi_ = 0;
    uint64_t chunk = load_u64(ts + L.ts_datastack_chunk);
    uint64_t top = load_u64(ts + L.ts_datastack_top);
    if (plausible(chunk) && top > chunk && top - chunk < (1ull << 30)) {
        // The innermost frames lie just below top: copy the used part, or its top kChunkCopy bytes.
        uint64_t hi = top;
        uint64_t lo = std::max<uint64_t>(chunk + L.chunk_header, hi > kChunkCopy ? hi - kChunkCopy : 0);
        if (reader_.read(lo, chunk_.data(), hi - lo)) { chunk_lo_ = lo; chunk_hi_ = hi; }
    }

    bool first = true;
    for (int hops = 0; f != 0; ++hops) {
        if (!plausible(f) || hops > max_hops_) return Capture::Torn;
        const uint8_t* fb = frame_bytes(f);
        if (fb == nullptr) return Capture::Torn;
        int owner = static_cast<signed char>(fb[L.if_owner]);
        uint64_t prev = load_u64(fb + L.if_previous);
        if (first) { remember_top(f + L.if_code, f + L.if_previous, fb + L.if_code, fb + L.if_previous); first = false; }
        bool shim = owner == L.owner_cstack || owner == L.owner_interpreter;
        if (!shim) {
            if (n == max_depth_) { truncated = true; break; }
            uint64_t code = load_u64(fb + L.if_code) & ~L.if_code_tag_mask;
            walked_[static_cast<size_t>(n++)] = {code, load_u64(fb + L.if_instr)};
            // A suspended generator's frame has no caller: the chain changed under the walk.
            if (prev == 0 && owner == L.owner_generator) return Capture::Torn;
        }
        f = prev;
    }
    return Capture::Ok;
}

// One batched read of every distinct code object of the stack, then the per-frame checks.
Capture FrameCapture::resolve_codes(int n, FrameRecord* out) {
    size_t u = 0;
    for (int i = 0; i < n; ++i) {
        uint64_t c = walked_[static_cast<size_t>(i)].code;
        if (!plausible(c)) return Capture::Torn;
        unique_[u++] = c;
    }
    std::sort(unique_.begin(), unique_.begin() + static_cast<long>(u));
    u = static_cast<size_t>(std::unique(unique_.begin(), unique_.begin() + static_cast<long>(u)) - unique_.begin());
    for (size_t i = 0; i < u; ++i) {
        local_[i] = {codes_.data() + i * L.co_size, L.co_size};
        remote_[i] = {reinterpret_cast<void*>(unique_[i]), L.co_size};
    }
    if (!reader_.readv(local_.data(), remote_.data(), u)) return Capture::Torn;

    for (int i = 0; i < n; ++i) {
        const Walked& w = walked_[static_cast<size_t>(i)];
        size_t k = static_cast<size_t>(std::lower_bound(unique_.begin(), unique_.begin() + static_cast<long>(u), w.code) - unique_.begin());
        const uint8_t* cb = codes_.data() + k * L.co_size;
        if (!is_code_object(L, cb)) return Capture::Torn;
        int64_t instr;
        if (L.frame_model == SPPROF_FRAMES_OBJECTS) {
            instr = static_cast<int64_t>(w.instr);
        } else {
            // The instruction pointer must point into this code object's own bytecode.
            int64_t units = load_i64(cb + L.ob_size);
            int64_t off = static_cast<int64_t>(w.instr - (w.code + L.co_code_adaptive));
            if (units <= 0 || (off & 1) != 0 || off < -2 || off >= units * 2) return Capture::Torn;
            instr = off < 0 ? -1 : off;
        }
        FrameRecord& r = out[i];
        r.code = w.code;
        r.fingerprint = code_fingerprint(L, cb);
        r.instr_bytes = instr;
        r.reserved = 0;
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
