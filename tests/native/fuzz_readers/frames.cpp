// Target: FrameCapture::capture.
#include "fuzz.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <memory>
#include <set>
#include <thread>

#include "code_identity.h"
#include "frame_capture.h"
#include "linetable.h"
#include "native_ids.h"
#include "profile_data.h"
#include "pyobjects.h"
#include "symbols.h"
#include "thread_list.h"

using namespace spprof;
using harness::fmt;

namespace fuzz {

// A thread's chain as CPython links it, read here the simple way (for the relocation).
std::vector<uint64_t> real_chain(const uint8_t* ts) {
    std::vector<uint64_t> out;
    bool ok = true;
    uint64_t f = load_u64(ts + L.ts_frame);
    if (L.frame_model == SPPROF_FRAMES_CFRAME) f = f ? read_u64(f + L.cframe_current_frame, ok) : 0;
    uint32_t link = L.frame_model == SPPROF_FRAMES_OBJECTS ? L.fo_back : L.if_previous;
    while (ok && f != 0 && out.size() < 2000) {
        out.push_back(f);
        f = read_u64(f + link, ok);
    }
    return out;
}

struct Image {
    std::vector<uint64_t> clean, work;  // `work`'s address is the one its pointers name; never resized
    uint64_t ts_addr = 0;
    std::vector<uint64_t> hot64, hot32, hot8;  // byte offsets of fields worth mutating
    std::vector<uint64_t> frames;             // relocated frame addresses, innermost first
    std::vector<uint64_t> links;              // offsets of their caller fields, innermost first
    int64_t anchor = -1;                      // offset of the current-frame word the walker reads twice
    std::vector<std::vector<uint64_t>> expect;  // codes of an unmutated capture, per FrameCapture
    std::vector<int> expect_result;
    uint64_t base() const { return reinterpret_cast<uint64_t>(work.data()); }
    size_t size() const { return work.size() * 8; }
    uint8_t* bytes() { return reinterpret_cast<uint8_t*>(work.data()); }
};

// Copies a real thread's state and frames (and on 3.11+ its current stack chunk) into one buffer,
// pointing every pointer between them at the copies.
bool build_image(const RealThread& t, Image& img) {
    std::vector<uint8_t> ts(L.ts_size);
    if (!R.read(t.tstate, ts.data(), ts.size())) return false;
    struct Region { uint64_t addr; size_t len; size_t off; };
    std::vector<Region> regions{{t.tstate, L.ts_size, 0}};
    std::vector<uint64_t> chain = real_chain(ts.data());
    if (L.frame_model == SPPROF_FRAMES_OBJECTS) {
        for (uint64_t f : chain) regions.push_back({f, L.fo_size, 0});
    } else {
        if (L.frame_model == SPPROF_FRAMES_CFRAME) regions.push_back({load_u64(ts.data() + L.ts_frame), L.cframe_size, 0});
        uint64_t chunk = load_u64(ts.data() + L.ts_datastack_chunk), limit = load_u64(ts.data() + L.ts_datastack_limit);
        if (chunk && limit > chunk && limit - chunk < (4u << 20)) regions.push_back({chunk, limit - chunk, 0});
    }
    size_t off = 0;
    for (Region& r : regions) {
        r.off = off;
        off += (r.len + 64 + 7) & ~size_t(7);
    }
    img.clean.assign(off / 8 + 64, 0);
    img.work.assign(img.clean.size(), 0);
    uint8_t* c = reinterpret_cast<uint8_t*>(img.clean.data());
    for (const Region& r : regions)
        if (!R.read(r.addr, c + r.off, r.len)) return false;
    auto relocate = [&](uint64_t v, uint64_t& out) {
        for (const Region& r : regions)
            if (v >= r.addr && v <= r.addr + r.len && (v & 7) == (r.addr & 7)) { out = img.base() + r.off + (v - r.addr); return true; }
        return false;
    };
    for (uint64_t& w : img.clean) relocate(w, w);
    img.ts_addr = img.base();
    const uint64_t tsw[] = {L.ts_frame, L.ts_datastack_chunk, L.ts_datastack_top, L.ts_datastack_limit, L.ts_next, L.ts_interp};
    for (uint64_t f : tsw) img.hot64.push_back(f);
    if (L.frame_model == SPPROF_FRAMES_CFRAME) img.anchor = static_cast<int64_t>(regions[1].off + L.cframe_current_frame);
    if (L.frame_model == SPPROF_FRAMES_CURRENT) img.anchor = L.ts_frame;
    if (img.anchor >= 0) img.hot64.push_back(static_cast<uint64_t>(img.anchor));
    for (uint64_t f : chain) {
        uint64_t rf;
        if (!relocate(f, rf)) continue;
        img.frames.push_back(rf);
        uint64_t o = rf - img.base();
        img.links.push_back(o + (L.frame_model == SPPROF_FRAMES_OBJECTS ? L.fo_back : L.if_previous));
        if (L.frame_model == SPPROF_FRAMES_OBJECTS) {
            for (uint64_t x : {L.fo_back, L.fo_code, L.fo_gen, L.ob_type}) img.hot64.push_back(o + x);
            img.hot32.push_back(o + L.fo_lasti);
            img.hot8.push_back(o + L.fo_state);
        } else {
            for (uint64_t x : {L.if_previous, L.if_code, L.if_instr}) img.hot64.push_back(o + x);
            img.hot8.push_back(o + L.if_owner);
        }
    }
    return true;
}

struct CaptureSet {
    std::vector<std::unique_ptr<FrameCapture>> caps;
    std::vector<int> depths{8, 64, 128};
    CaptureSet() { for (int d : depths) caps.emplace_back(new FrameCapture(L, R, d)); }
};

// The checks every walk must pass. With `still` memory, an Ok walk's code objects are read again.
void check_capture(Capture c, int depth, bool truncated, const std::vector<FrameRecord>& out, int max_depth, bool still,
                   const char* what, uint64_t iter) {
    CHECK(c == Capture::Ok || c == Capture::Empty || c == Capture::Torn, fmt("%s #%llu: capture returned %d", what, (unsigned long long)iter, (int)c));
    if (c != Capture::Ok) {
        CHECK(depth == 0, fmt("%s #%llu: a walk that is not Ok reported depth %d", what, (unsigned long long)iter, depth));
        return;
    }
    CHECK(depth >= 1 && depth <= max_depth, fmt("%s #%llu: depth %d of at most %d", what, (unsigned long long)iter, depth, max_depth));
    // A walk ends early, its callers unknown, only at a suspended generator's frame: on 3.11+
    // never the innermost one; on 3.9/3.10 that one too, named current by the state's copy.
    const bool interp = L.frame_model != SPPROF_FRAMES_OBJECTS;
    CHECK(!truncated || depth == max_depth || !interp || depth > 1,
          fmt("%s #%llu: truncated at depth %d < %d", what, (unsigned long long)iter, depth, max_depth));
    if (!still) return;
    if (truncated && depth < max_depth) {
        bool ok1 = false, ok2 = false;
        const uint64_t top = out[depth - 1].frame;
        bool generator;
        if (interp) {
            const uint64_t prev = read_u64(top + L.if_previous, ok1);
            const int owner = static_cast<signed char>(read_u64(top + L.if_owner, ok2) & 0xff);
            generator = prev == 0 && owner == L.owner_generator;
        } else {
            const uint64_t back = read_u64(top + L.fo_back, ok1);
            bool ok3 = false;
            const uint64_t gen = read_u64(top + L.fo_gen, ok2);
            const int state = static_cast<signed char>(read_u64(top + L.fo_state, ok3) & 0xff);
            generator = ok3 && back == 0 && gen != 0 && state != L.fo_running;
        }
        CHECK(ok1 && ok2 && generator,
              fmt("%s #%llu: truncated at depth %d < %d, not at a suspended generator", what, (unsigned long long)iter, depth, max_depth));
    }
    for (int i = 0; i < depth; ++i) {
        bool ok;
        uint64_t type = read_u64(out[i].code + L.ob_type, ok);
        CHECK(ok && type == L.code_type, fmt("%s #%llu: frame %d's code 0x%llx is no code object", what, (unsigned long long)iter, i, (unsigned long long)out[i].code));
        CHECK(L.trampoline_code == 0 || out[i].code != L.trampoline_code,
              fmt("%s #%llu: frame %d is 3.12's entry-frame trampoline, not a frame of the program", what, (unsigned long long)iter, i));
        CHECK(out[i].instr_bytes >= -1, fmt("%s #%llu: instruction offset %lld", what, (unsigned long long)iter, (long long)out[i].instr_bytes));
        if (L.frame_model != SPPROF_FRAMES_OBJECTS) {
            int64_t units = static_cast<int64_t>(read_u64(out[i].code + L.ob_size, ok));
            CHECK(ok && out[i].instr_bytes / 2 < units, fmt("%s #%llu: instruction offset %lld past %lld code units", what,
                                                            (unsigned long long)iter, (long long)out[i].instr_bytes, (long long)units));
        }
    }
}

// A fake image from nothing: pointer-like words, a chain of plausible frames, fake code objects.
void random_image(Rng& rng, Image& img, std::vector<uint8_t>& ts_arg) {
    uint8_t* w = img.bytes();
    const uint64_t base = img.base();
    const size_t size = img.size();
    img.frames.clear();
    img.links.clear();
    img.hot64.clear();
    img.anchor = -1;
    for (uint64_t& word : img.work) word = rng.chance(40) ? 0 : pool_word(rng, base, size);
    // fake code objects in the upper half
    std::vector<uint64_t> fake_codes;
    for (int k = 0; k < 6; ++k) {
        uint64_t o = size / 2 + 8 * rng.below((size / 2 - L.co_size - 64) / 8);
        store_u64(w + o + L.ob_type, rng.chance(90) ? L.code_type : pool_word(rng, base, size));
        store_u64(w + o + L.ob_size, rng.chance(80) ? 1 + rng.below(400) : static_cast<uint64_t>(interesting_int(rng)));
        store_i32(w + o + L.co_firstlineno, static_cast<int32_t>(interesting_int(rng)));
        fake_codes.push_back(base + o);
    }
    // the chain, like a stack: frames at rising addresses from a chunk's start, innermost last
    const uint64_t chunk = base + 1024;
    const size_t fsize = L.frame_model == SPPROF_FRAMES_OBJECTS ? L.fo_size : L.if_size;
    const size_t stride = fsize + 8 * rng.below(12);
    const int n = 1 + static_cast<int>(rng.below(std::min<uint64_t>(300, (size / 2 - 2048) / stride)));
    for (int i = 0; i < n; ++i) img.frames.push_back(chunk + 64 + static_cast<uint64_t>(i) * stride);
    for (int i = n - 1; i >= 0; --i) {
        uint8_t* f = w + (img.frames[static_cast<size_t>(i)] - base);
        uint64_t code = rng.chance(45) ? rng.pick(g_codes) : rng.chance(80) ? rng.pick(fake_codes) : pool_word(rng, base, size);
        uint64_t prev = i == 0 ? 0 : img.frames[static_cast<size_t>(i - 1)];
        if (rng.chance(4)) prev = img.frames[rng.below(img.frames.size())];  // a cycle
        if (rng.chance(3)) prev = pool_word(rng, base, size, &img.frames);
        if (L.frame_model == SPPROF_FRAMES_OBJECTS) {
            store_u64(f + L.ob_type, rng.chance(95) ? L.frame_type : pool_word(rng, base, size));
            store_u64(f + L.fo_back, prev);
            store_u64(f + L.fo_code, code);
            store_i32(f + L.fo_lasti, rng.chance(80) ? static_cast<int32_t>(rng.below(200)) - 1 : static_cast<int32_t>(interesting_int(rng)));
            f[L.fo_state] = rng.chance(90) ? static_cast<uint8_t>(L.fo_running) : static_cast<uint8_t>(rng.below(6));
            store_u64(f + L.fo_gen, rng.chance(90) ? 0 : pool_word(rng, base, size));
        } else {
            store_u64(f + L.if_previous, prev);
            // 3.14: sometimes cleared as on return (the NULL stackref), leaving the instruction pointer
            store_u64(f + L.if_code, L.if_code_cleared && rng.chance(10) ? 1 : code);
            uint64_t instr = code + L.co_code_adaptive + 2 * rng.below(64) - 2;
            store_u64(f + L.if_instr, rng.chance(85) ? instr : pool_word(rng, base, size));
            f[L.if_owner] = static_cast<uint8_t>(rng.chance(90) ? rng.below(5) : rng.next());
        }
    }
    // innermost first, as the walker meets them
    std::reverse(img.frames.begin(), img.frames.end());
    for (uint64_t f : img.frames) img.links.push_back(f - base + (L.frame_model == SPPROF_FRAMES_OBJECTS ? L.fo_back : L.if_previous));
    // the thread state at the image's start
    img.ts_addr = base;
    uint64_t top = img.frames.front() + fsize;
    for (size_t o = 0; o + 8 <= L.ts_size; o += 8) store_u64(w + o, pool_word(rng, base, size, &img.frames));
    uint64_t first = rng.chance(90) ? img.frames.front() : pool_word(rng, base, size, &img.frames);
    if (L.frame_model == SPPROF_FRAMES_CFRAME) {
        uint64_t cf = base + size / 2 - 256;
        store_u64(w + (cf - base) + L.cframe_current_frame, first);
        store_u64(w + L.ts_frame, rng.chance(90) ? cf : pool_word(rng, base, size));
        img.anchor = static_cast<int64_t>(cf - base + L.cframe_current_frame);
    } else {
        store_u64(w + L.ts_frame, first);
        if (L.frame_model == SPPROF_FRAMES_CURRENT) img.anchor = L.ts_frame;
    }
    img.hot64 = img.links;
    if (img.anchor >= 0) img.hot64.push_back(static_cast<uint64_t>(img.anchor));
    if (L.frame_model != SPPROF_FRAMES_OBJECTS && rng.chance(70)) {
        store_u64(w + L.ts_datastack_chunk, chunk);
        store_u64(w + L.ts_datastack_top, rng.chance(80) ? top : top - 8 * rng.below(64));
        store_u64(w + L.ts_datastack_limit, rng.chance(70) ? top + 8 * rng.below(1024) : pool_word(rng, base, size));
        if (rng.chance(10)) store_u64(w + L.ts_datastack_top, chunk + 8 * rng.below(8));  // below the chunk's header
    }
    ts_arg.assign(w, w + L.ts_size);
    if (rng.chance(15)) ts_arg[rng.below(ts_arg.size())] = static_cast<uint8_t>(rng.next());  // a copy that disagrees
}

void mutate_image(Rng& rng, Image& img) {
    uint8_t* w = img.bytes();
    switch (rng.below(10)) {
        case 0: case 1: case 2: case 3:
            store_u64(w + rng.pick(img.hot64), pool_word(rng, img.base(), img.size(), &img.frames)); break;
        case 4: if (!img.hot8.empty()) w[rng.pick(img.hot8)] = static_cast<uint8_t>(rng.chance(70) ? rng.below(6) : rng.next()); break;
        case 5: if (!img.hot32.empty()) store_i32(w + rng.pick(img.hot32), static_cast<int32_t>(interesting_int(rng))); break;
        case 6: w[rng.below(img.size())] ^= static_cast<uint8_t>(1u << rng.below(8)); break;
        case 7: img.work[rng.below(img.work.size())] = pool_word(rng, img.base(), img.size(), &img.frames); break;
        case 8: if (!img.frames.empty()) store_u64(w + rng.pick(img.hot64), rng.pick(img.frames)); break;  // cycles
        default: {  // a frame field read past the image, or wrapping
            uint64_t v = rng.chance(50) ? ~uint64_t(0) - 8 * rng.below(16) : img.base() + img.size() - 8 * rng.below(4);
            store_u64(w + rng.pick(img.hot64), v);
        }
    }
}

void fuzz_frames(Rng& rng, uint64_t deadline, uint64_t max_iter, TargetStats& st) {
    CaptureSet cs;
    std::vector<FrameRecord> out(128);
    // Images of the blocked threads; an unmutated one must walk to the real thread's stack.
    std::vector<std::unique_ptr<Image>> images;
    for (const RealThread& t : g_threads) {
        std::unique_ptr<Image> img(new Image());
        CHECK(build_image(t, *img), "cannot copy a blocked thread's state and frames");
        std::vector<uint8_t> ts(L.ts_size);
        CHECK(R.read(t.tstate, ts.data(), ts.size()), "cannot read a blocked thread's state");
        for (size_t k = 0; k < cs.caps.size(); ++k) {
            std::vector<FrameRecord> real(static_cast<size_t>(cs.depths[k]));
            int depth = 0;
            bool truncated = false;
            Capture c = cs.caps[k]->capture(t.tstate, ts.data(), real.data(), depth, truncated);
            CHECK(c == Capture::Ok && depth >= 3, fmt("the real blocked thread %llx walks to %d (depth %d)", (unsigned long long)t.ident, (int)c, depth));
            std::vector<uint64_t> codes;
            for (int i = 0; i < depth; ++i) codes.push_back(real[static_cast<size_t>(i)].code);
            img->expect.push_back(codes);
        }
        images.push_back(std::move(img));
    }
    std::unique_ptr<Image> rnd(new Image());
    rnd->work.assign(48 * 1024 / 8, 0);

    WordChurn mut;
    mut.start();
    uint64_t i = 0, live = 0, oracle = 0, worst_ns = 0, stale_cframes = 0, returned = 0, other_thread = 0, suspended = 0, left = 0,
             settled = 0;
    uint64_t results[3] = {0, 0, 0};
    std::vector<uint8_t> ts_arg;
    for (; i < max_iter && (i & 15 || harness::now_ns() < deadline); ++i) {
        g_heartbeat.fetch_add(1, std::memory_order_relaxed);
        size_t k = rng.below(cs.caps.size());
        FrameCapture& cap = *cs.caps[k];
        const int max_depth = cs.depths[k];
        Image* img;
        bool clean = false, reused = false;
        if (rng.chance(45)) {
            img = images[rng.below(images.size())].get();
            std::copy(img->clean.begin(), img->clean.end(), img->work.begin());
            int muts = rng.chance(8) ? 0 : 1 + static_cast<int>(rng.below(6));
            for (int m = 0; m < muts; ++m) mutate_image(rng, *img);
            const uint8_t* w = img->bytes();
            ts_arg.assign(w, w + L.ts_size);
            clean = muts == 0;
            if (!clean && rng.chance(15)) store_u64(ts_arg.data() + L.ts_frame, pool_word(rng, img->base(), img->size(), &img->frames));
            if (clean && L.frame_model == SPPROF_FRAMES_CFRAME && img->frames.size() > 2 && rng.chance(50)) {
                // The copy names a _PyCFrame the thread has left (a coroutine's evaluation loop
                // that returned), whose slot still holds an outer frame: the walk must follow the
                // thread state's cframe as it is now, and find the whole stack.
                const uint64_t stale = img->base() + img->size() - 256;
                store_u64(img->bytes() + (stale - img->base()) + L.cframe_current_frame, img->frames[2]);
                store_u64(ts_arg.data() + L.ts_frame, stale);
                ++stale_cframes;
            }
            if (clean && L.frame_model == SPPROF_FRAMES_OBJECTS && images.size() > 1 && rng.chance(30)) {
                // The copy names a frame the thread has returned from since, now another thread's
                // innermost frame: that thread's chain passes every check of its own, and the
                // walk must not charge it to this thread.
                Image* other = images[rng.below(images.size())].get();
                if (other != img && !other->frames.empty()) {
                    std::copy(other->clean.begin(), other->clean.end(), other->work.begin());
                    store_u64(ts_arg.data() + L.ts_frame, other->frames[0]);
                    clean = false;
                    reused = true;
                }
            }
        } else {
            img = rnd.get();
            random_image(rng, *img, ts_arg);
        }
        // The walker reads `ts` directly: hand it an exact-size copy.
        std::unique_ptr<uint8_t[]> ts(new uint8_t[L.ts_size]);
        std::memcpy(ts.get(), ts_arg.data(), L.ts_size);
        std::vector<FrameRecord> records(static_cast<size_t>(max_depth));
        bool is_live = !clean && rng.chance(12) && !img->links.empty();
        if (is_live) {  // the current frame and a few callers change under the walk, as a live thread's do
            mut.n = 0;
            for (int m = 0; m < 4; ++m) {
                uint64_t off = m == 0 && img->anchor >= 0 ? static_cast<uint64_t>(img->anchor)
                                                          : img->links[std::min<size_t>(rng.below(4), img->links.size() - 1)];
                mut.words[m] = reinterpret_cast<uint64_t*>(img->bytes() + off);
                for (int v = 0; v < 4; ++v) {
                    switch (rng.below(5)) {
                        case 0: mut.values[m][v] = ~uint64_t(0) - 8 * rng.below(16); break;  // wraps past the end
                        case 1: mut.values[m][v] = pool_word(rng, img->base(), img->size(), &img->frames); break;
                        default: mut.values[m][v] = img->frames[std::min<size_t>(rng.below(6), img->frames.size() - 1)];  // calls and returns
                    }
                }
                mut.n = m + 1;
            }
            mut.run();
            ++live;
        }
        int depth = -1;
        bool truncated = false;
        uint64_t t0 = harness::now_ns();
        // A tick's walks of a thread span a few captures: the torn ones of this and the last
        // iterations (other images, other memory) are what the next Ok one is held against.
        if (i % 3 == 0) cap.begin_walks();
        Capture c = cap.capture(img->ts_addr, ts.get(), records.data(), depth, truncated);
        worst_ns = std::max(worst_ns, harness::now_ns() - t0);
        if (is_live) mut.park();
        check_capture(c, depth, truncated, records, max_depth, !is_live, "frames", i);
        if (c == Capture::Ok) {
            std::vector<FrameRecord> kept(records);
            const int d = cap.settle_after_tear(kept.data(), depth, truncated);
            CHECK(d == -1 || (d >= 1 && d <= max_depth && !truncated),
                  fmt("frames #%llu: a walk of depth %d (max %d) settled to %d", (unsigned long long)i, depth, max_depth, d));
            int unknown = 0;
            for (int f = 0; f < d; ++f) unknown += kept[static_cast<size_t>(f)].instr_bytes == kUnknownRecord;
            CHECK(d == -1 || unknown == 1, fmt("frames #%llu: %d unknown records in a settled walk", (unsigned long long)i, unknown));
            settled += d > 0;
        }
        results[static_cast<int>(c)]++;
        if (reused) {
            CHECK(c == Capture::Torn, fmt("frames #%llu: a copy naming another thread's frame walks to %d with depth %d",
                                          (unsigned long long)i, (int)c, depth));
            ++other_thread;
        }
        if (clean) {  // unmutated copy of a real thread: the real stack, every frame of it
            size_t idx = static_cast<size_t>(img - images[0].get());
            for (size_t j = 0; j < images.size(); ++j) if (images[j].get() == img) idx = j;
            const std::vector<uint64_t>& want = images[idx]->expect[k];
            auto is_real_stack = [&](const char* what) {
                CHECK(c == Capture::Ok && static_cast<size_t>(depth) == want.size(),
                      fmt("%s #%llu: a copy of a real thread walks to %d with depth %d, the thread itself to depth %zu",
                          what, (unsigned long long)i, (int)c, depth, want.size()));
                for (int f = 0; f < depth; ++f)
                    CHECK(records[static_cast<size_t>(f)].code == want[static_cast<size_t>(f)],
                          fmt("%s #%llu: frame %d differs from the real walk", what, (unsigned long long)i, f));
            };
            is_real_stack("frames");
            ++oracle;
            // The copy changed as a live thread's would have: the capture must still find the real stack.
            auto walks_whole = [&](const char* what) {
                c = cap.capture(img->ts_addr, ts.get(), records.data(), depth, truncated);
                check_capture(c, depth, truncated, records, max_depth, true, what, i);
                is_real_stack(what);
            };
            if (L.frame_model == SPPROF_FRAMES_OBJECTS && img->frames.size() > 2) {
                // 3.9/3.10: the thread returned from its two innermost frames after its state was
                // copied, and they hold their callers as they were: the stack of the copy.
                for (int r = 0; r < 2; ++r)
                    img->bytes()[img->frames[static_cast<size_t>(r)] - img->base() + L.fo_state] = static_cast<uint8_t>(L.fo_running + 1);
                walks_whole("frames (two innermost returned)");
                std::copy(img->clean.begin(), img->clean.end(), img->work.begin());
                ++left;
            }
            uint8_t* gen = nullptr;
            for (size_t f = 0; L.frame_model == SPPROF_FRAMES_OBJECTS && gen == nullptr && f < img->frames.size(); ++f) {
                uint8_t* fb = img->bytes() + (img->frames[f] - img->base());
                if (load_u64(fb + L.fo_gen) != 0) gen = fb;
            }
            if (gen != nullptr) {
                // 3.9/3.10: the generator suspended after its callee was read running, and its
                // frame lost its caller: the walk keeps it and finds its caller where the last
                // walk did, the whole stack.
                gen[L.fo_state] = static_cast<uint8_t>(L.fo_running + 1);  // any state but running
                store_u64(gen + L.fo_back, 0);
                walks_whole("frames (generator suspended)");
                ++suspended;
            }
            const uint64_t top = img->frames.empty() ? 0 : img->frames[0];
            uint8_t* tb = top ? img->bytes() + (top - img->base()) : nullptr;
            if (L.if_code_cleared && tb && load_u64(ts.get() + L.ts_frame) == top &&
                static_cast<signed char>(tb[L.if_owner]) == L.owner_thread) {
                // 3.14: the innermost frame just returned, its code cleared and its instruction
                // pointer left: the capture that has just named it names it again by that pointer.
                store_u64(tb + L.if_code, 1);
                walks_whole("frames (innermost returned, code cleared)");
                ++returned;
            }
        }
    }
    mut.quit();
    st.iterations = i;
    st.notes["Ok"] = results[0];
    st.notes["Empty"] = results[1];
    st.notes["Torn"] = results[2];
    st.notes["walks with memory changing under them"] = live;
    st.notes["clean copies matching the real walk"] = oracle;
    st.notes["walks kept in part after a tear"] = settled;
    st.notes["... of them through a stale cframe"] = stale_cframes;
    st.notes["copies naming another thread's frame, rejected"] = other_thread;
    st.notes["... named again after their innermost frame returned (3.14)"] = returned;
    st.notes["... walked whole after their generator suspended (3.9/3.10)"] = suspended;
    st.notes["... walked whole after their two innermost frames returned (3.9/3.10)"] = left;
    st.notes["slowest walk (us)"] = worst_ns / 1000;
    uint64_t torn_total = 0;
    for (int r = 0; r < kTornReasons; ++r) {
        uint64_t n = 0;
        for (auto& cap : cs.caps) n += cap->torn(r);
        st.notes[kTornReasonNames[r]] = n;
        torn_total += n;
    }
    // a torn walk is taken again at once, and every attempt counts its reason
    CHECK(torn_total >= results[2], fmt("torn counters %llu < torn walks %llu", (unsigned long long)torn_total, (unsigned long long)results[2]));
}

}  // namespace fuzz
