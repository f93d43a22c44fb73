#include "threads.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "code_identity.h"

namespace spprof {

namespace {
size_t slot_of(uint64_t ident) { return static_cast<size_t>(mix64(0, ident) % NativeIds::kSlots); }
constexpr uint64_t kMaxAddr = 0x0000800000000000ull;
}

void NativeIds::put(uint64_t ident, uint32_t tid) {
    if (ident == 0) return;
    size_t s = slot_of(ident);
    for (size_t i = 0; i < kSlots; ++i, s = (s + 1) % kSlots) {
        uint64_t cur = slots_[s].ident.load(std::memory_order_acquire);
        if (cur == ident || cur == 0) {
            slots_[s].tid.store(tid, std::memory_order_relaxed);
            slots_[s].ident.store(ident, std::memory_order_release);
            return;
        }
    }
}

uint32_t NativeIds::get(uint64_t ident) const {
    size_t s = slot_of(ident);
    for (size_t i = 0; i < kSlots; ++i, s = (s + 1) % kSlots) {
        uint64_t cur = slots_[s].ident.load(std::memory_order_acquire);
        if (cur == ident) return slots_[s].tid.load(std::memory_order_relaxed);
        if (cur == 0) return 0;
    }
    return 0;
}

ThreadList::ThreadList(const spprof_layout& layout, SafeReader& reader, const NativeIds& ids, size_t max_threads)
    : L(layout), reader_(reader), ids_(ids), max_(max_threads) {
    copies_.resize(max_threads * L.ts_size);
    gil_.resize(L.gil_size);
    seen_.resize(max_threads);
    iov_local_.resize(max_threads + 2);
    iov_remote_.resize(max_threads + 2);
}

void ThreadList::record(size_t i, uint64_t ts) {
    ThreadSeen& t = seen_[i];
    const uint8_t* copy = copies_.data() + i * L.ts_size;
    t.tstate = ts;
    t.copy = copy;
    t.ident = load_u64(copy + L.ts_thread_id);
    t.tid = L.has_native_thread_id ? static_cast<uint32_t>(load_u64(copy + L.ts_native_thread_id))
                                   : ids_.get(t.ident);
    // 3.11+: the top of the frame stack moves on every call; before, the frame pointer itself
    t.activity = mix64(load_u64(copy + L.ts_frame), L.has_native_thread_id ? load_u64(copy + L.ts_datastack_top) : 0);
}

// The list rarely changes between ticks: read the head, every thread state of the last tick and
// the GIL in one system call, and keep the result if the chain still links them in the same order.
bool ThreadList::enumerate_as_before() {
    const size_t n = count_;
    if (n == 0 || n >= max_) return false;
    uint64_t head = 0;
    iov_local_[0] = {&head, sizeof head};
    iov_remote_[0] = {reinterpret_cast<void*>(L.interp + L.interp_threads_head), sizeof head};
    for (size_t i = 0; i < n; ++i) {
        iov_local_[i + 1] = {copies_.data() + i * L.ts_size, L.ts_size};
        iov_remote_[i + 1] = {reinterpret_cast<void*>(seen_[i].tstate), L.ts_size};
    }
    iov_local_[n + 1] = {gil_.data(), gil_.size()};
    iov_remote_[n + 1] = {reinterpret_cast<void*>(L.gil), gil_.size()};
    if (!reader_.readv(iov_local_.data(), iov_remote_.data(), n + 2)) return false;
    uint64_t expect = head;
    for (size_t i = 0; i < n; ++i) {
        const uint8_t* copy = copies_.data() + i * L.ts_size;
        if (expect != seen_[i].tstate || load_u64(copy + L.ts_interp) != L.interp) return false;
        expect = load_u64(copy + L.ts_next);
    }
    if (expect != 0) return false;
    for (size_t i = 0; i < n; ++i) record(i, seen_[i].tstate);
    // `locked` is an int on every version (-1 before the GIL exists); `last_holder` a pointer
    if (load_i32(gil_.data() + L.gil_locked) == 1) gil_holder_ = load_u64(gil_.data() + L.gil_last_holder);
    return true;
}

bool ThreadList::enumerate() {
    overflowed_ = false;
    gil_holder_ = 0;
    if (enumerate_as_before()) return true;
    count_ = 0;
    uint64_t ts = 0;
    if (!reader_.read(L.interp + L.interp_threads_head, &ts, sizeof ts)) return false;
    while (ts != 0) {
        if ((ts & 7) != 0 || ts >= kMaxAddr) { count_ = 0; return false; }
        if (count_ == max_) { overflowed_ = true; break; }
        uint8_t* copy = copies_.data() + count_ * L.ts_size;
        // not ours: freed and reused
        if (!reader_.read(ts, copy, L.ts_size) || load_u64(copy + L.ts_interp) != L.interp) { count_ = 0; return false; }
        record(count_++, ts);
        ts = load_u64(copy + L.ts_next);
    }
    return true;
}

bool ThreadList::refresh(size_t i) {
    ThreadSeen& t = seen_[i];
    uint8_t* copy = copies_.data() + i * L.ts_size;
    return reader_.read(t.tstate, copy, L.ts_size) && load_u64(copy + L.ts_interp) == L.interp &&
           load_u64(copy + L.ts_thread_id) == t.ident;
}

uint64_t clock_ns(clockid_t id, bool& ok) {
    struct timespec t;
    ok = clock_gettime(id, &t) == 0;
    return ok ? static_cast<uint64_t>(t.tv_sec) * 1000000000ull + static_cast<uint64_t>(t.tv_nsec) : 0;
}

uint64_t thread_cpu_ns(uint32_t tid, bool& ok) {
    // The kernel's CPU clock of one thread by its tid (CPUCLOCK_SCHED | CPUCLOCK_PERTHREAD);
    // unlike pthread_getcpuclockid it cannot touch a pthread_t that has already died.
    ok = false;
    return tid != 0 ? clock_ns(static_cast<clockid_t>((~static_cast<unsigned>(tid) << 3) | 6u), ok) : 0;
}

void OwnThreadCpu::begin() { tid_.store(static_cast<uint32_t>(::gettid())); }

void OwnThreadCpu::end() {
    final_ns_.store(clock_ns(CLOCK_THREAD_CPUTIME_ID));
    tid_.store(0);
}

uint64_t OwnThreadCpu::ns() const {
    bool ok = false;
    const uint64_t ns = thread_cpu_ns(tid_.load(), ok);
    return ok ? ns : final_ns_.load();
}

ThreadStates::ThreadStates(size_t slots) : files_(slots) {}

void ThreadStates::close_all() {
    for (File& f : files_) {
        if (f.fd >= 0) ::close(f.fd);
        f = File{};
    }
}

bool ThreadStates::blocked(size_t slot, uint32_t tid) {
    File& f = files_[slot % files_.size()];
    char buf[32];
    ssize_t n = -1;
    for (int attempt = 0; attempt < 2 && n <= 0; ++attempt) {
        if (f.tid != tid || f.fd < 0 || attempt > 0) {  // another thread's, or gone stale
            if (f.fd >= 0) ::close(f.fd);
            char path[48];
            std::snprintf(path, sizeof path, "/proc/self/task/%u/syscall", tid);
            f.fd = ::open(path, O_RDONLY | O_CLOEXEC);
            f.tid = tid;
            if (f.fd < 0) return false;
        }
        n = ::pread(f.fd, buf, sizeof buf - 1, 0);  // the kernel writes the file afresh at offset 0
    }
    // "running", or the number of the system call it waits in
    if (n <= 0 || buf[0] < '0' || buf[0] > '9') return false;
    buf[n] = '\0';
    return std::strtol(buf, nullptr, 10) != SYS_futex;
}

CpuClocks::CpuClocks(size_t max_threads, uint64_t interval_ns)
    : prev_(max_threads), cur_(max_threads), threshold_ns_(interval_ns / 4) {}

void CpuClocks::begin_tick(size_t threads) {
    read_ns_ = 0;
    skipped_now_ = 0;
    gating_ = threads >= kGateThreads;
    if (!gating_) {
        have_base_ = false;
        gate_ = false;
        return;
    }
    process_ns_ = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    own_ns_ = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    gate_ = have_base_ && !read_all_;
    if (read_all_) full_reads_.fetch_add(1, std::memory_order_relaxed);
}

bool CpuClocks::observe(uint64_t tstate, uint32_t tid, uint64_t activity, bool holds_gil, bool count_new,
                        uint64_t& delta_ns) {
    const Entry key{tid, tstate, 0, 0, 0};
    auto end = prev_.begin() + static_cast<long>(nprev_);
    auto it = std::lower_bound(prev_.begin(), end, key, Entry::before);
    const bool known = it != end && it->tid == tid && it->tstate == tstate;
    if (gate_ && known && it->idle >= kIdleTicks && it->activity == activity && !holds_gil) {
        if (ncur_ < cur_.size()) cur_[ncur_++] = *it;
        ++skipped_now_;
        delta_ns = 0;
        return true;
    }
    bool ok;
    uint64_t now = thread_cpu_ns(tid, ok);
    if (!ok) return false;
    if (known && now >= it->cpu_ns) delta_ns = now - it->cpu_ns;
    else delta_ns = count_new ? now : 0;  // a new thread, or a tid reused by one
    read_ns_ += delta_ns;
    uint8_t idle = 0;
    if (known && delta_ns == 0) idle = static_cast<uint8_t>(std::min<int>(it->idle + 1, 255));
    if (ncur_ < cur_.size()) cur_[ncur_++] = {tid, tstate, now, activity, idle};
    return true;
}

void CpuClocks::end_tick() {
    if (gating_) {
        if (skipped_now_ == 0) {
            unread_ns_ = 0;  // every clock is current: nothing is left unaccounted
        } else {
            const int64_t used = static_cast<int64_t>(process_ns_ - process_prev_) -
                                 static_cast<int64_t>(own_ns_ - own_prev_) - static_cast<int64_t>(read_ns_);
            unread_ns_ = std::max<int64_t>(0, unread_ns_ + used);
        }
        read_all_ = unread_ns_ > static_cast<int64_t>(threshold_ns_);
        process_prev_ = process_ns_;
        own_prev_ = own_ns_;
        have_base_ = true;
        skipped_total_.fetch_add(skipped_now_, std::memory_order_relaxed);
    }
    std::swap(prev_, cur_);
    nprev_ = ncur_;
    ncur_ = 0;
    std::sort(prev_.begin(), prev_.begin() + static_cast<long>(nprev_), Entry::before);
}

void CpuClocks::keep_previous() { ncur_ = 0; }

}  // namespace spprof
