#include "sampler.h"

#include "kernel_clock.h"
#include "quiet_thread.h"

#include <pthread.h>
#include <unistd.h>
#include <time.h>

#include <algorithm>
#include <cstring>

namespace spprof {

namespace {
// Buffers for this many threads at first, doubled on the sampler thread (between samples) when a
// tick finds more, up to the bound; beyond it the oldest threads are left out, and counted.
constexpr size_t kInitialThreads = 1024;
constexpr size_t kMaxThreads = 65536;
constexpr int kRetries = 2;
constexpr size_t kSeenCodes = 4096;  // a power of two

}  // namespace

uint64_t monotonic_ns() {
    return clock_ns(CLOCK_MONOTONIC);
}

Sampler::Sampler(const spprof_layout& layout, const SamplerOptions& opts, SampleQueue& queue, DrainSignal& drain,
                 const NativeIds& ids)
    : L(layout), opts_(opts), queue_(queue), drain_(drain), half_queue_(queue.write_available() / 2),
      seen_code_(kSeenCodes), threads_(layout, reader_, ids, kInitialThreads, kMaxThreads), clocks_(kInitialThreads, opts.interval_ns),
      states_(opts.wall ? 1 : kChainSlots),
      capture_(layout, reader_, opts.max_depth), gil_waits_(layout, reader_), tasks_(layout, reader_),
      waiting_(layout, reader_, tasks_, capture_, opts.max_depth),
      cells_(static_cast<size_t>(opts.max_depth) + 1 + kTaskCells),
      last_run_(opts.wall ? 0 : kChainSlots), stacks_(opts.wall ? kInitialThreads : 0), natives_(opts.interval_ns) {
    for (LastRun& r : last_run_) r.frames.resize(static_cast<size_t>(opts.max_depth) + kTaskCells);
}

Sampler::~Sampler() { stop(); }

bool Sampler::start(const std::string& forced_reader, std::string& error) {
    std::lock_guard<std::mutex> hold(control_);
    if (!open(forced_reader, error)) return false;
    metronome_.reset(new Metronome(opts_.interval_ns));
    if (!metronome_->prepare(error)) {
        metronome_.reset();
        return false;
    }
    return start_thread(error);
}

bool Sampler::start_thread(std::string& error) {
    Metronome* m = metronome_.get();
    try {
        thread_ = start_quiet_thread([this, m] { run(m); });
    } catch (const std::exception& e) {
        error = std::string("cannot start the sampler thread: ") + e.what();
        return false;
    }
    return true;
}

bool Sampler::open(const std::string& forced_reader, std::string& error) {
    if (!reader_.open(forced_reader, error)) return false;
    take_baseline();
    return true;
}

// CPU time used before start() is not part of the profile.
void Sampler::take_baseline() {
    last_tick_ns_ = monotonic_ns();
    if (opts_.wall) return;
    for (int attempt = 0; attempt < 5; ++attempt) {
        if (!threads_.enumerate()) continue;
        uint64_t d;
        clocks_.begin_tick(threads_.size(), true);
        for (size_t i = 0; i < threads_.size(); ++i) {
            const ThreadSeen& t = threads_[i];
            clocks_.observe(i, t.tstate, t.tid, t.activity, false, false, d);
        }
        clocks_.end_tick();
        break;
    }
    if (opts_.native_threads) read_native(last_tick_ns_, true);
}

bool Sampler::end_thread(std::chrono::milliseconds bound) {
    const auto until = std::chrono::steady_clock::now() + bound;
    while (!metronome_->ended() && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (metronome_->ended()) {
        thread_.join();
        return true;
    }
    // Asleep in the epoll the program closed, where nothing will wake it: it is left there,
    // and whatever it could touch when woken is leaked.
    metronome_->retire();
    thread_.detach();
    (void)metronome_.release();
    abandoned_ = true;
    return false;
}

bool Sampler::stop() {
    std::lock_guard<std::mutex> hold(control_);
    stopping_ = true;
    if (thread_.joinable()) {
        if (!metronome_->intact()) counters_.descriptors_lost.fetch_add(1, std::memory_order_relaxed);
        metronome_->stop();  // also holds when run() has not started yet: it then returns at once
        // The native threads' CPU since their last read, read here now that the thread has ended.
        if (end_thread(std::chrono::milliseconds(2000)) && !opts_.wall && opts_.native_threads && threads_.enumerate())
            read_native(monotonic_ns(), false);
    }
    return !abandoned_;
}

void Sampler::watch() {
    std::unique_lock<std::mutex> hold(control_, std::try_to_lock);
    if (!hold.owns_lock() || stopping_ || !thread_.joinable() || metronome_->intact()) return;
    counters_.descriptors_lost.fetch_add(1, std::memory_order_relaxed);
    // The thread ends by itself after its tick, unless it sleeps in the lost epoll.
    end_thread(std::chrono::milliseconds(100));
    if (metronome_) (void)metronome_.release();  // its descriptors are no longer its own
    states_.close_all();
    std::string error;
    if (!reader_.revalidate(error)) {
        counters_.sampling_stopped.store(true);
        return;
    }
    std::unique_ptr<Metronome> fresh(new Metronome(opts_.interval_ns));
    if (!fresh->prepare(error)) {
        counters_.sampling_stopped.store(true);
        return;
    }
    metronome_ = std::move(fresh);
    if (!start_thread(error)) {
        counters_.sampling_stopped.store(true);
        return;
    }
    counters_.timer_restarts.fetch_add(1, std::memory_order_relaxed);
}

void Sampler::run(Metronome* m) {
    pthread_setname_np(pthread_self(), "spprof-sampler");
    cpu_.begin();
    try {
        // false when the descriptors were lost: watch() counts that and starts the next thread
        (void)m->run([this] {
            tick(monotonic_ns(), true);
            counters_.ticks.fetch_add(1, std::memory_order_relaxed);
            counters_.reads.store(reader_.syscalls(), std::memory_order_relaxed);
        }, counters_.missed_ticks);
    } catch (...) {  // out of memory in Asio, or anything else: sampling ends, the profile stays
        counters_.errors.fetch_add(1, std::memory_order_relaxed);
        counters_.sampling_stopped.store(true);
    }
    cpu_.end();
    m->mark_ended();
}

void Sampler::push(const ThreadSeen& t, uint64_t t_ns, uint64_t weight, int depth, uint16_t flags) {
    SampleHeader& h = cells_[0].header;
    h.t_ns = t_ns;
    h.thread_ident = t.ident;
    h.weight_ns = weight;
    h.native_tid = t.tid;
    h.depth = static_cast<uint16_t>(depth);
    h.flags = flags;
    if (!(flags & kSampleNative)) python_cpu_ns_ += weight;
    const size_t n = static_cast<size_t>(depth) + 1;
    if (queue_.write_available() >= n && queue_.push(cells_.data(), n) == n)
        counters_.collected.fetch_add(1, std::memory_order_relaxed);
    else
        counters_.dropped_full.fetch_add(1, std::memory_order_relaxed);
    if (queue_.write_available() < half_queue_) drain_.request();
}

bool Sampler::new_code(const FrameRecord* frames, int depth) {
    bool fresh = false;
    // Outermost first, as the collector reads them: a task's record and its name's cells hold no
    // code object (and every task's differ, which would wake the collector at each sample).
    for (int i = depth; i-- > 0;) {
        const FrameRecord& f = frames[i];
        if (f.instr_bytes == kTaskRecord) {
            i -= static_cast<int>(std::min<uint64_t>(task_name_cells(f.fingerprint), i));
            continue;
        }
        if (f.instr_bytes == kUnknownRecord) continue;
        SeenCode& s = seen_code_[((f.code >> 4) * 0x9E3779B97F4A7C15ull >> 52) & (kSeenCodes - 1)];
        if (s.code != f.code || s.fingerprint != f.fingerprint) {
            s.code = f.code;
            s.fingerprint = f.fingerprint;
            fresh = true;
        }
    }
    return fresh;
}

void Sampler::read_native(uint64_t t_ns, bool baseline) {
    natives_.python_tids_begin();
    for (size_t i = 0; i < threads_.size(); ++i) natives_.python_tid(threads_[i].tid);
    natives_.read(t_ns, collector_ != nullptr ? collector_->tid() : 0, baseline);
    static_assert(sizeof(NativeCharge::comm) <= sizeof(FrameRecord), "a name fits in a frame cell");
    for (const NativeCharge& c : natives_.charges()) {
        std::memset(&cells_[1], 0, sizeof cells_[1]);
        std::memcpy(&cells_[1], c.comm, sizeof c.comm);
        push(ThreadSeen{0, 0, c.tid, 0, nullptr}, t_ns, c.cpu_ns, 1, kSampleNative);
    }
}

bool Sampler::ignore_thread(uint64_t ident) {
    // Called with the GIL, which orders the callers; the sampler only reads.
    const size_t n = n_ignored_.load(std::memory_order_relaxed);
    if (ident == 0 || n == kIgnored) return false;
    ignored_[n].store(ident, std::memory_order_relaxed);
    n_ignored_.store(n + 1, std::memory_order_release);
    return true;
}

bool Sampler::ignored(uint64_t ident) const {
    const size_t n = n_ignored_.load(std::memory_order_acquire);
    for (size_t k = 0; k < n; ++k)
        if (ignored_[k].load(std::memory_order_relaxed) == ident) return true;
    return false;
}

void Sampler::tick(uint64_t t_ns, bool count_new) {
    // The threads marked quiet (leave_stale) are not copied.
    if (!threads_.enumerate()) {
        counters_.torn_lists.fetch_add(1, std::memory_order_relaxed);
        clocks_.keep_previous();
        stacks_.keep_previous();
        return;
    }
    // wall mode: a tick is worth the time since the previous one, so a late or skipped tick
    // (a busy machine, a torn thread list) leaves no hole in the profile's total
    const uint64_t wall_weight = last_tick_ns_ != 0 && t_ns > last_tick_ns_ ? t_ns - last_tick_ns_ : opts_.interval_ns;
    last_tick_ns_ = t_ns;
    const size_t n = threads_.size();
    if (threads_.overflowed()) counters_.lists_cut.fetch_add(1, std::memory_order_relaxed);
    if (n > counters_.threads_max.load(std::memory_order_relaxed)) counters_.threads_max.store(n, std::memory_order_relaxed);
    if (!opts_.wall) {
        clocks_.begin_tick(n, false, threads_.positions_kept());
    } else {
        uint64_t switches, last_holder;
        const bool known = threads_.gil_switches(switches, last_holder);
        stacks_.begin_tick(n, known, switches, last_holder);
    }
    tasks_.begin_tick();
    if (opts_.wall) waiting_.begin_tick(n, wall_weight);
    bool quiet = false;  // wall mode: the thread visited last had not run since the last tick
    // A sample's time is when its thread was read: a busy machine can delay the sampler between
    // its tick's start and a thread. Weights stay the tick's; samples stay in time order.
    uint64_t seen_ns = t_ns;
    FrameRecord* frames = &cells_[1].frame;
    // A running thread can move under the walk; fresher copies usually agree. One taken again
    // after a torn one keeps the frames the torn copy agrees with, "<unknown>" for the others
    // (`cut`): what it found there is where the thread went after, which favours the longer phases.
    auto walk = [&](size_t i, FrameRecord* out, int& depth, bool& truncated, bool& cut) {
        const ThreadSeen& t = threads_[i];
        capture_.begin_walks();
        Capture c = capture_.capture(t.tstate, t.copy, out, depth, truncated);
        for (int retry = 0; c == Capture::Torn && retry < kRetries && threads_.refresh(i); ++retry) {
            counters_.retries.fetch_add(1, std::memory_order_relaxed);
            c = capture_.capture(t.tstate, t.copy, out, depth, truncated);
        }
        const int settled = c == Capture::Ok ? capture_.settle_after_tear(out, depth, truncated) : -1;
        cut = settled >= 0;
        if (cut) {
            depth = settled;
            counters_.cut_after_tear.fetch_add(1, std::memory_order_relaxed);
        }
        seen_ns = std::max(seen_ns, monotonic_ns());
        return c;
    };
    auto visit = [&](size_t i) {
        const ThreadSeen& t = threads_[i];
        if (ignored(t.ident)) return;
        const bool holds_gil = t.tstate == threads_.gil_holder();
        uint64_t weight = wall_weight;
        threads_.wake(i);  // its state is copied at the next tick, unless marked below
        quiet = false;
        if (!opts_.wall) {
            if (t.tid == 0) {
                counters_.unidentified.fetch_add(1, std::memory_order_relaxed);
                return;
            }
            const bool seen = clocks_.observe(i, t.tstate, t.tid, t.activity, holds_gil, count_new, weight);
            // A thread whose clock will not be read needs no fresh copy of its state either.
            if (seen && clocks_.idle(i)) threads_.leave_stale(i);
            if (!seen || weight == 0) return;
        } else {
            // The time since this thread's own last sample: a late tick, or one that missed it,
            // leaves no hole in its total.
            const LastStacks::Entry* before = stacks_.previous(i, t);
            if (before != nullptr && t_ns > before->t_ns) weight = t_ns - before->t_ns;
            if (stacks_.unchanged(before, t)) {
                // It has not run: its frames are those of its last sample, with no walk.
                if (stacks_.reuse(i, *before, t_ns)) threads_.leave_stale(i);
                counters_.stacks_reused.fetch_add(1, std::memory_order_relaxed);
                quiet = true;
                if (before->depth == 0) return;
                std::copy(stacks_.frames(*before), stacks_.frames(*before) + before->depth, frames);
                push(t, seen_ns, weight, before->depth, before->truncated ? kSampleTruncated : 0);
                return;
            }
        }
        // cpu mode: a thread that used CPU since the previous tick and now sleeps or waits for
        // I/O used that CPU before it blocked. The call it waits in did not use it: it goes to
        // where the thread was seen running at its previous tick. (A thread waiting for the GIL
        // stopped where it ran, so its stack now is the right one.) Every thread that ran pays
        // the read of its kernel state: one that ran nearly all the interval and blocked just
        // before the tick is common in periodic work, and without the read its whole interval
        // would go to the sleep. The GIL's holder runs Python code: it needs no read, nor does
        // a thread stopped where the GIL is handed over (gil_waits.h).
        const size_t slot = thread_slot(t.tstate);
        LastRun* last = opts_.wall ? nullptr : &last_run_[slot];
        if (last != nullptr && (last->tstate != t.tstate || last->tid != t.tid)) {
            last->fresh = false;
            last->handover = false;
        }
        int depth = 0;
        bool truncated = false, cut = false;
        Capture c = Capture::Empty;
        bool walked_first = false;
        bool running = opts_.wall || holds_gil;
        if (!running && last->handover) {
            // It waited for the GIL at its last sample without it, as a thread in a busy loop
            // does: walked first, it is known to wait again when its stack says so.
            if (!threads_.fresh(i) && !threads_.refresh(i)) return;  // likely gone
            c = walk(i, frames, depth, truncated, cut);
            walked_first = true;
            running = c == Capture::Ok && !cut && gil_waits_.at_handover(frames[0]);
        }
        const bool waits_gil = running && !holds_gil && !opts_.wall;
        if (waits_gil) counters_.gil_waits.fetch_add(1, std::memory_order_relaxed);
        if (!running) running = !states_.blocked(slot, t.tid);
        if (!running && last->fresh && last->depth > 0) {
            last->fresh = false;
            last->handover = false;
            std::copy(last->frames.begin(), last->frames.begin() + last->depth, frames);
            counters_.before_block.fetch_add(1, std::memory_order_relaxed);
            push(t, seen_ns, weight, last->depth, last->truncated ? kSampleTruncated : 0);
            return;
        }
        if (!walked_first) {
            // It was quiet and left uncopied, and now ran: its stack needs its state as it is now.
            if (!threads_.fresh(i) && !threads_.refresh(i)) return;  // likely gone
            c = walk(i, frames, depth, truncated, cut);
        }
        // The task is named before the stack is kept, so a reused stack keeps its task.
        const bool walked = c != Capture::Torn && c != Capture::Empty;
        const bool fresh_code = walked && new_code(frames, depth);
        if (walked && capture_.met_generator()) depth = tasks_.name_running(t.tstate, frames, depth);
        if (opts_.wall) stacks_.record(i, t, c == Capture::Torn || cut ? nullptr : frames, depth, truncated, t_ns);
        if (c == Capture::Empty) return;
        if (c == Capture::Torn) {
            // The thread ran, so its time is kept: it goes to "<unknown>", never to a stack that
            // may not have been running, and is counted.
            counters_.torn.fetch_add(1, std::memory_order_relaxed);
            counters_.torn_charged.fetch_add(1, std::memory_order_relaxed);
            push(t, seen_ns, weight, 0, kSampleUnknown);
            return;
        }
        if (last != nullptr) {
            last->tstate = t.tstate;
            last->tid = t.tid;
            last->fresh = running && !cut;
            // Only threads without the GIL are looked up: the holder's instructions are many,
            // a waiter's few, and each new one costs a read. The holder keeps its mark: a thread
            // in a busy loop holds the GIL at some ticks and waits for it at the others.
            if (!holds_gil) last->handover = waits_gil || (last->fresh && gil_waits_.at_handover(frames[0]));
            if (last->fresh) {
                last->depth = depth;
                last->truncated = truncated;
                std::copy(frames, frames + depth, last->frames.begin());
            }
        }
        push(t, seen_ns, weight, depth, truncated ? kSampleTruncated : 0);
        if (fresh_code) drain_.request();
    };
    if (clocks_.gating() && !threads_.copied_all()) {
        // cpu mode, the list as before: a thread left uncopied is quiet, its activity that of
        // its last copy, so only the GIL's holder among them needs its clock read. The others
        // are not visited at all: what they cost is nothing per tick.
        const uint64_t holder = threads_.gil_holder();
        bool holder_seen = holder == 0;
        for (const uint32_t i : threads_.copied()) {
            holder_seen = holder_seen || threads_[i].tstate == holder;
            visit(i);
        }
        size_t visited = threads_.copied().size();
        if (!holder_seen) {
            const size_t i = threads_.position(holder);
            if (i < n && !threads_.fresh(i)) {
                visit(i);
                ++visited;
            }
        }
        clocks_.skip(n - visited);
    } else {
        for (size_t i = 0; i < n; ++i) {
            visit(i);
            if (opts_.wall && waiting_.enabled() && !ignored(threads_[i].ident)) {
                // Each suspended task of the thread: a sample of the thread where the task waits.
                int depth = 0;
                uint64_t weight = 0;
                waiting_.begin_thread(i, threads_[i].tstate, t_ns, quiet);
                while (waiting_.next(frames, depth, weight)) {
                    const bool fresh_code = new_code(frames, depth);
                    push(threads_[i], seen_ns, weight, depth, 0);
                    if (fresh_code) drain_.request();
                }
            }
        }
    }
    const uint64_t stale = n - threads_.copied_count();
    if (!opts_.wall) {
        clocks_.end_tick();
        if (!clocks_.gating_next()) threads_.forget_marks();  // every clock is read next: every state copied
    } else {
        stacks_.end_tick();
    }
    if (!opts_.wall && opts_.native_threads && natives_.due(t_ns) &&
        natives_.unaccounted(python_cpu_ns_, cpu_.ns() + (collector_ != nullptr ? collector_->ns() : 0)))
        read_native(t_ns, false);
    if (stale != 0) counters_.states_stale.fetch_add(stale, std::memory_order_relaxed);
}

}  // namespace spprof
