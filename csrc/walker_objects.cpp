// 3.9/3.10: heap-allocated PyFrameObjects linked by f_back. A thread's callers rarely change
// between ticks, so the frames of its last chain are read again in one system call first; only
// frames that are not among them (new calls) are read on their own.
#include <algorithm>
#include <vector>

#include "bytes.h"
#include "frame_capture.h"
#include "walker.h"

namespace spprof {

namespace {

constexpr int kChainLookahead = 16;  // frames popped since the last tick that are skipped over
constexpr int kOwnerHops = 64;       // callers of the thread's current frame searched for the walk's
}  // namespace

class ObjectWalker final : public FrameWalker {
public:
    explicit ObjectWalker(FrameCapture& cap) : cap_(cap), L(cap.L) {
        const size_t depth = static_cast<size_t>(cap_.max_depth_);
        frame_.resize(L.fo_size + 64);
        spec_.resize(depth * L.fo_copy);
        chain_now_.resize(depth);
        chains_.resize(kChainSlots);
        for (Chain& c : chains_) c.addrs.resize(depth);
    }

    Capture walk(uint64_t ts_addr, const uint8_t* ts, int& n, bool& truncated) override;

    // f_lasti is already an offset into the bytecode, in bytes once scaled.
    bool instruction_bytes(const Walked& w, const uint8_t*, int64_t& bytes) const override {
        bytes = static_cast<int64_t>(w.instr);
        return true;
    }

    bool still_the_threads(int n) override;

private:
    struct Chain;
    uint64_t caller_of_suspended(const Chain& last, int known, uint64_t f, const uint8_t* fb, int& n, int& cursor);

    FrameCapture& cap_;
    const spprof_layout& L;
    // Each thread's last chain of frame addresses, read again in one batch.
    struct Chain { uint64_t tstate = 0; int n = 0; std::vector<uint64_t> addrs; };
    std::vector<Chain> chains_;
    std::vector<uint8_t> spec_;         // the batch, fo_copy bytes a frame
    std::vector<uint64_t> chain_now_;
    std::vector<uint8_t> frame_;        // one frame read on its own
};

Capture ObjectWalker::walk(uint64_t ts_addr, const uint8_t* ts, int& n, bool& truncated) {
    cap_.check_top_ = true;
    uint64_t f = load_u64(ts + L.ts_frame);
    if (f == 0) return Capture::Empty;
    const size_t need = L.fo_copy;
    Chain& last = chains_[thread_slot(ts_addr)];
    int known = 0;
    size_t k = 0;
    struct iovec* local = cap_.local_.data();
    struct iovec* remote = cap_.remote_.data();
    if (last.tstate == ts_addr) {
        for (int i = 0; i < last.n; ++i, ++k) {
            local[k] = {spec_.data() + static_cast<size_t>(i) * need, need};
            remote[k] = {reinterpret_cast<void*>(last.addrs[static_cast<size_t>(i)]), need};
        }
    }
    const size_t main_bytes = k * need;
    size_t total = k + cap_.add_prefetch(ts_addr, local + k, remote + k);
    if (total > 0) {
        size_t copied = cap_.reader_.readv_prefix(local, remote, total);
        if (copied >= main_bytes) known = static_cast<int>(k);
        cap_.prefetch_done(main_bytes, copied);
    }
    int cursor = 0;
    // Every frame so far has returned since the state was copied: the thread left them between
    // the copy and the batch read, which holds them as they were then, their callers linked.
    bool returned = true;
    for (int hops = 0; f != 0; ++hops) {
        if (!plausible(f) || hops > cap_.max_hops_) return cap_.reject(kTornPointer);
        if (n == cap_.max_depth_) { truncated = true; break; }
        const uint8_t* fb = nullptr;
        for (int j = cursor; j < known && j < cursor + kChainLookahead; ++j) {
            if (last.addrs[static_cast<size_t>(j)] == f) {
                fb = spec_.data() + static_cast<size_t>(j) * need;
                cursor = j + 1;
                break;
            }
        }
        if (fb == nullptr) {
            if (!cap_.reader_.read(f, frame_.data(), need)) return cap_.reject(kTornUnreadable);
            fb = frame_.data();
        }
        if (load_u64(fb + L.ob_type) != L.frame_type) return cap_.reject(kTornNotFrame);
        bool running = static_cast<signed char>(fb[L.fo_state]) == L.fo_running;
        const bool generator = load_u64(fb + L.fo_gen) != 0;
        if (generator) cap_.met_generator_ = true;
        if (!running && generator && load_u64(fb + L.fo_back) == 0) {
            // A generator or coroutine suspended since the thread's state was copied. It was
            // running then: it was the current frame, or its callee was (the innermost frame, which
            // may have returned since) or still is. A batch read takes tens of microseconds on a
            // VM, longer than an event loop's task step, so this is common; taking the walk again
            // instead would land where the thread stays longest, and favour it.
            f = caller_of_suspended(last, known, f, fb, n, cursor);
            truncated = f == 0;
            returned = false;
            continue;
        }
        // Below a running frame every caller runs. A returned caller's own caller may have returned
        // too and its memory run another call since: the running frame met after two returned ones
        // must be one the thread's last walk met.
        if (!running && !returned) return cap_.reject(kTornNotRunning);
        if (running && returned && n > 1 && fb == frame_.data()) return cap_.reject(kTornNotRunning);
        int64_t lasti = load_i32(fb + L.fo_lasti);
        if (lasti < -1) return cap_.reject(kTornInstruction);
        // A caller that has returned since is on its last instruction now, not on its call.
        int64_t instr = lasti < 0 || (!running && n > 0) ? -1 : lasti * L.fo_lasti_scale;
        returned = returned && !running;
        if (n == 0) cap_.remember_top(f + L.fo_code, f + L.fo_back, fb + L.fo_code, fb + L.fo_back, ts_addr + L.ts_frame);
        chain_now_[static_cast<size_t>(n)] = f;
        cap_.walked_[static_cast<size_t>(n++)] = {load_u64(fb + L.fo_code), static_cast<uint64_t>(instr), f};
        f = load_u64(fb + L.fo_back);
    }
    // Frames that all returned and lead to no running one are not a thread's stack of any time:
    // freed frames are linked through f_back on CPython's free list.
    if (returned && n > 1) return cap_.reject(kTornNotRunning);
    cap_.whole_ = !truncated;
    // A walk that ended at a suspended generator keeps the callers the last one had for the next.
    if (truncated && n < last.n && last.tstate == ts_addr) return Capture::Ok;
    last.tstate = ts_addr;
    last.n = n;
    std::copy(chain_now_.begin(), chain_now_.begin() + n, last.addrs.begin());
    return Capture::Ok;
}

// Records generator frame `f` (copy `fb`, suspended since the state was copied) as running, and
// returns the frame to walk on from: the caller that a generator of the same code had in the last
// chain, when that caller is still running in this batch; else 0 (the walk ends there, truncated).
// A running frame of the thread that is not below f is one of f's callers; a task's coroutine is
// resumed from the same frame of the event loop at every step, so it is most often the caller.
uint64_t ObjectWalker::caller_of_suspended(const Chain& last, int known, uint64_t f, const uint8_t* fb, int& n,
                                           int& cursor) {
    const uint64_t code = load_u64(fb + L.fo_code);
    chain_now_[static_cast<size_t>(n)] = f;
    // The line it was on is gone: it reads as the function's first.
    cap_.walked_[static_cast<size_t>(n++)] = {code, static_cast<uint64_t>(-1), f};
    for (int j = 0; j + 1 < known; ++j) {
        const uint8_t* g = spec_.data() + static_cast<size_t>(j) * L.fo_copy;
        if (load_u64(g + L.fo_gen) == 0 || load_u64(g + L.fo_code) != code) continue;
        const uint64_t caller = last.addrs[static_cast<size_t>(j + 1)];
        const uint8_t* c = spec_.data() + static_cast<size_t>(j + 1) * L.fo_copy;
        const bool walked = std::find(chain_now_.begin(), chain_now_.begin() + n, caller) != chain_now_.begin() + n;
        if (walked || static_cast<signed char>(c[L.fo_state]) != L.fo_running || n == cap_.max_depth_) return 0;
        cursor = j + 1;
        return caller;
    }
    return 0;
}

// The walk starts from the copy of the thread state, which can be older than the walk: a frame the
// thread returned from since may be reused by another thread, whose chain then passes every check
// of its own. The thread's current frame, read after the walk, must be one of the walked frames
// or be called from one (the thread went deeper, or returned and called again). Taken from the
// copy, the walk still samples the thread where its state was copied, whatever it ran since.
bool ObjectWalker::still_the_threads(int n) {
    uint64_t f = cap_.current_now_;
    for (int hops = 0; hops < kOwnerHops && f != 0 && plausible(f); ++hops) {
        if (std::find(chain_now_.begin(), chain_now_.begin() + n, f) != chain_now_.begin() + n) return true;
        if (!cap_.reader_.read(f + L.fo_back, &f, sizeof f)) return false;
    }
    return false;
}

std::unique_ptr<FrameWalker> make_object_walker(FrameCapture& capture) {
    return std::unique_ptr<FrameWalker>(new ObjectWalker(capture));
}

}  // namespace spprof
