#include "cpu_clocks.h"

#include <sched.h>

#include <algorithm>
#include <thread>
#include <utility>

#include "kernel_clock.h"

namespace spprof {

// The CPUs this process may run on (its affinity, as a container's cpuset sets it), not all
// the machine's.
static size_t usable_cpus() {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return static_cast<size_t>(CPU_COUNT(&set));
    return std::max(1u, std::thread::hardware_concurrency());
}

CpuClocks::CpuClocks(size_t initial_threads, uint64_t interval_ns)
    : prev_(initial_threads), cur_(initial_threads), order_(initial_threads), threshold_ns_(interval_ns / 4),
      cpus_(usable_cpus()) {}

void CpuClocks::begin_tick(size_t threads, bool baseline, bool same_list) {
    read_ns_ = 0;
    reads_now_ = 0;
    skipped_now_ = 0;
    in_place_ = same_list && !baseline && threads == nprev_ && threads > 0;
    if (in_place_) {
        ncur_ = threads;
    } else if (threads > cur_.size()) {  // as the thread list grew; prev_ keeps its baselines
        const size_t n = std::max(threads, 2 * cur_.size());
        prev_.resize(n);
        cur_.resize(n);
        order_.resize(n);
    }
    if (!in_place_) {
        ncur_ = threads;
        std::fill(cur_.begin(), cur_.begin() + static_cast<long>(ncur_), Entry{});
    }
    gating_ = !baseline && threads >= kGateThreads;
    if (!gating_) {
        have_base_ = false;
        gate_ = false;
        return;
    }
    gate_ = have_base_ && !read_all_;
    if (read_all_) full_reads_.fetch_add(1, std::memory_order_relaxed);
}

const CpuClocks::Entry* CpuClocks::previous(size_t i, uint64_t tstate, uint32_t tid) {
    if (i < nprev_ && prev_[i].tid == tid && prev_[i].tstate == tstate) return &prev_[i];
    if (in_place_) return nullptr;  // same positions: a new thread there (or its tid now known)
    auto key = [this](uint32_t p) { return std::make_pair(prev_[p].tid, prev_[p].tstate); };
    if (!ordered_) {
        for (size_t p = 0; p < nprev_; ++p) order_[p] = static_cast<uint32_t>(p);
        std::sort(order_.begin(), order_.begin() + static_cast<long>(nprev_),
                  [&](uint32_t a, uint32_t b) { return key(a) < key(b); });
        ordered_ = true;
    }
    const auto end = order_.begin() + static_cast<long>(nprev_);
    const auto it = std::lower_bound(order_.begin(), end, std::make_pair(tid, tstate),
                                     [&](uint32_t p, const std::pair<uint32_t, uint64_t>& k) { return key(p) < k; });
    return it != end && key(*it) == std::make_pair(tid, tstate) ? &prev_[*it] : nullptr;
}

bool CpuClocks::observe(size_t i, uint64_t tstate, uint32_t tid, uint64_t activity, bool holds_gil, bool count_new,
                        uint64_t& delta_ns) {
    const Entry* before = tid != 0 ? previous(i, tstate, tid) : nullptr;
    Entry* slot = i < ncur_ ? (in_place_ ? &prev_[i] : &cur_[i]) : nullptr;
    if (gate_ && before != nullptr && before->idle >= kIdleTicks && before->activity == activity && !holds_gil) {
        if (slot != nullptr) *slot = *before;
        ++skipped_now_;
        delta_ns = 0;
        return true;
    }
    bool ok;
    if (reads_now_++ == 0) first_read_wall_ns_ = clock_ns(CLOCK_MONOTONIC);
    uint64_t now = thread_cpu_ns(tid, ok);
    if (!ok) {
        if (slot != nullptr) *slot = Entry{};  // no clock at this position now
        return false;
    }
    if (before != nullptr && now >= before->cpu_ns) delta_ns = now - before->cpu_ns;
    else delta_ns = count_new ? now : 0;  // a new thread, or a tid reused by one
    read_ns_ += delta_ns;
    uint8_t idle = 0;
    if (before != nullptr && delta_ns == 0) idle = static_cast<uint8_t>(std::min<int>(before->idle + 1, 255));
    if (slot != nullptr) *slot = Entry{tid, tstate, now, activity, idle};
    return true;
}

// The process's clock is the kernel's sum over every thread of the process (7 us warm with 1000
// threads, far more with cold caches): with many threads it is read every few ticks, the clocks
// read in between added up until then. A tick that read every clock reads it at once.
static size_t process_every(size_t threads) {
    return threads < 256 ? 1 : std::min<size_t>(8, threads / 128);
}

void CpuClocks::end_tick() {
    if (gating_) {
        read_since_ += read_ns_;
        const bool due = !have_base_ || skipped_now_ == 0 || ++ticks_since_ >= process_every(ncur_);
        if (due) {
            // Read after the threads' clocks: the process's clock leaves out the time a thread
            // running on another CPU has used since that CPU's last scheduler tick, and reading
            // the thread's own clock brings it in; read before, busy threads would seem to
            // outrun the process and force full reads.
            process_ns_ = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
            const uint64_t wall_ns = clock_ns(CLOCK_MONOTONIC);
            own_ns_ = clock_ns(CLOCK_THREAD_CPUTIME_ID);
            if (skipped_now_ == 0) {
                unread_ns_ = 0;  // every clock is current: nothing is left unaccounted
            } else {
                const int64_t used = static_cast<int64_t>(process_ns_ - process_prev_) -
                                     static_cast<int64_t>(own_ns_ - own_prev_) - static_cast<int64_t>(read_since_);
                unread_ns_ = std::max<int64_t>(0, unread_ns_ + used);
            }
            // A thread read this tick may have run since, and the process's clock counts that: up
            // to the time since the first read (the tick's visits), per thread read, at most one
            // per CPU, and never more than an interval. That is microseconds, unless a busy
            // machine held the sampler up; the excess is carried, and if it was CPU unread the
            // next tick sees it still.
            const uint64_t since_reads = reads_now_ == 0 || wall_ns < first_read_wall_ns_ ? 0 : wall_ns - first_read_wall_ns_;
            const uint64_t slack = std::min(since_reads * std::min(reads_now_, cpus_), 4 * threshold_ns_);
            read_all_ = unread_ns_ > static_cast<int64_t>(threshold_ns_ + slack);
            process_prev_ = process_ns_;
            own_prev_ = own_ns_;
            read_since_ = 0;
            ticks_since_ = 0;
        }
        have_base_ = true;
        skipped_total_.fetch_add(skipped_now_, std::memory_order_relaxed);
    }
    if (!in_place_) std::swap(prev_, cur_);
    nprev_ = ncur_;
    ncur_ = 0;
    ordered_ = false;
}

void CpuClocks::keep_previous() { ncur_ = 0; }

}  // namespace spprof
