#include "threads.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "code_identity.h"

namespace spprof {

namespace {
size_t slot_of(uint64_t ident) { return static_cast<size_t>(mix64(0, ident) & (NativeIds::kSlots - 1)); }
constexpr uint64_t kMaxAddr = 0x0000800000000000ull;
}

void NativeIds::write(Slot& s, uint64_t ident, uint32_t tid) {
    const uint32_t q = s.seq.load(std::memory_order_relaxed);
    s.seq.store(q + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    s.tid.store(tid, std::memory_order_relaxed);
    s.ident.store(ident, std::memory_order_relaxed);
    s.seq.store(q + 2, std::memory_order_release);
}

void NativeIds::put(uint64_t ident, uint32_t tid) {
    if (ident == 0) return;
    const size_t home = slot_of(ident);
    for (size_t i = 0; i < kProbe; ++i) {
        Slot& s = slots_[(home + i) & (kSlots - 1)];
        const uint64_t cur = s.ident.load(std::memory_order_relaxed);  // only this writer changes it
        if (cur == ident || cur == 0) return write(s, ident, tid);
    }
    // A full window: the first thread of it that has exited makes room. Its tid may have gone to
    // a live thread since; that entry then stays until that thread exits too.
    const pid_t pid = ::getpid();
    for (size_t i = 0; i < kProbe; ++i) {
        Slot& s = slots_[(home + i) & (kSlots - 1)];
        const uint32_t old = s.tid.load(std::memory_order_relaxed);
        if (old == 0 || (::syscall(SYS_tgkill, pid, static_cast<pid_t>(old), 0) != 0 && errno == ESRCH)) {
            evicted_.fetch_add(1, std::memory_order_relaxed);
            return write(s, ident, tid);
        }
    }
    not_stored_.fetch_add(1, std::memory_order_relaxed);
}

uint32_t NativeIds::get(uint64_t ident) const {
    const size_t home = slot_of(ident);
    for (size_t i = 0; i < kProbe; ++i) {
        const Slot& s = slots_[(home + i) & (kSlots - 1)];
        for (int attempt = 0; attempt < 4; ++attempt) {
            const uint32_t q = s.seq.load(std::memory_order_acquire);
            if (q & 1) continue;  // being written
            const uint64_t cur = s.ident.load(std::memory_order_relaxed);
            const uint32_t tid = s.tid.load(std::memory_order_relaxed);
            std::atomic_thread_fence(std::memory_order_acquire);
            if (s.seq.load(std::memory_order_relaxed) != q) continue;
            if (cur == 0) return 0;
            if (cur == ident) return tid;
            break;
        }
    }
    return 0;
}

ThreadList::ThreadList(const spprof_layout& layout, SafeReader& reader, const NativeIds& ids, size_t initial,
                       size_t bound)
    : L(layout), reader_(reader), ids_(ids), max_(0), bound_(std::max<size_t>(bound, 1)) {
    gil_.resize(L.gil_size);
    max_ = std::min(std::max<size_t>(initial, 1), bound_);
    grow();
}

// To 2 * max_ (the first time to max_), keeping the threads copied so far.
void ThreadList::grow() {
    const size_t n = copies_.empty() ? max_ : std::min(bound_, max_ * 2);
    copies_.resize(n * L.ts_size);
    seen_.resize(n);
    stale_ok_.resize(n);
    fresh_.resize(n);
    iov_local_.resize(n + 2);
    iov_remote_.resize(n + 2);
    for (size_t i = 0; i < count_; ++i) seen_[i].copy = copies_.data() + i * L.ts_size;
    size_t slots = 16;
    while (slots < 2 * n) slots *= 2;
    visited_.assign(slots, 0);
    visited_epoch_.assign(slots, 0);
    epoch_ = 0;
    for (size_t i = 0; i < count_; ++i) first_visit(seen_[i].tstate);
    max_ = n;
}

void ThreadList::forget_visits() {
    if (++epoch_ == 0) {  // wrapped: no stale epoch may match
        std::fill(visited_epoch_.begin(), visited_epoch_.end(), 0);
        epoch_ = 1;
    }
}

bool ThreadList::first_visit(uint64_t ts) {
    if (epoch_ == 0) forget_visits();
    const size_t mask = visited_.size() - 1;
    for (size_t s = static_cast<size_t>(mix64(0, ts)) & mask;; s = (s + 1) & mask) {
        if (visited_epoch_[s] != epoch_) {
            visited_epoch_[s] = epoch_;
            visited_[s] = ts;
            return true;
        }
        if (visited_[s] == ts) return false;
    }
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

// The list rarely changes between ticks: read the head, the thread states of the last tick (less
// those marked by leave_stale) and the GIL in one system call, and keep the result if the chain
// still links them in the same order. A new thread is linked in at the head, which is always
// read; an uncopied thread's link is unknown, and the check resumes at the next copied one.
bool ThreadList::enumerate_as_before() {
    const size_t n = count_;
    if (n == 0 || n >= max_) return false;
    const bool all = ++since_all_ >= kCopyAllEvery;
    if (all) since_all_ = 0;
    uint64_t head = 0;
    iov_local_[0] = {&head, sizeof head};
    iov_remote_[0] = {reinterpret_cast<void*>(L.interp + L.interp_threads_head), sizeof head};
    size_t k = 1;
    for (size_t i = 0; i < n; ++i) {
        fresh_[i] = all || !stale_ok_[i];
        if (!fresh_[i]) continue;
        iov_local_[k] = {copies_.data() + i * L.ts_size, L.ts_size};
        iov_remote_[k++] = {reinterpret_cast<void*>(seen_[i].tstate), L.ts_size};
    }
    iov_local_[k] = {gil_.data(), gil_.size()};
    iov_remote_[k++] = {reinterpret_cast<void*>(L.gil), gil_.size()};
    if (!reader_.readv(iov_local_.data(), iov_remote_.data(), k)) return false;
    uint64_t expect = head;
    bool known = true;
    for (size_t i = 0; i < n; ++i) {
        if (known && expect != seen_[i].tstate) return false;
        known = fresh_[i] != 0;
        if (!known) continue;
        const uint8_t* copy = copies_.data() + i * L.ts_size;
        if (load_u64(copy + L.ts_interp) != L.interp) return false;
        expect = load_u64(copy + L.ts_next);
    }
    if (known && expect != 0) return false;
    for (size_t i = 0; i < n; ++i) if (fresh_[i]) record(i, seen_[i].tstate);
    // `locked` is an int on every version (-1 before the GIL exists); `last_holder` a pointer
    if (load_i32(gil_.data() + L.gil_locked) == 1) gil_holder_ = load_u64(gil_.data() + L.gil_last_holder);
    return true;
}

bool ThreadList::enumerate() {
    overflowed_ = false;
    gil_holder_ = 0;
    const bool as_before = enumerate_as_before();
    std::fill(stale_ok_.begin(), stale_ok_.begin() + static_cast<long>(count_), 0);
    if (as_before) return true;
    since_all_ = 0;
    count_ = 0;
    uint64_t ts = 0;
    if (!reader_.read(L.interp + L.interp_threads_head, &ts, sizeof ts)) return false;
    forget_visits();
    while (ts != 0) {
        if (count_ == max_ && max_ < bound_) grow();  // on the sampler thread, never per sample
        if (count_ == max_) { overflowed_ = true; break; }
        if ((ts & 7) != 0 || ts >= kMaxAddr || !first_visit(ts)) { count_ = 0; return false; }
        uint8_t* copy = copies_.data() + count_ * L.ts_size;
        // not ours: freed and reused
        if (!reader_.read(ts, copy, L.ts_size) || load_u64(copy + L.ts_interp) != L.interp) { count_ = 0; return false; }
        fresh_[count_] = 1;
        record(count_++, ts);
        ts = load_u64(copy + L.ts_next);
    }
    return true;
}

bool ThreadList::refresh(size_t i) {
    ThreadSeen& t = seen_[i];
    uint8_t* copy = copies_.data() + i * L.ts_size;
    fresh_[i] = reader_.read(t.tstate, copy, L.ts_size) && load_u64(copy + L.ts_interp) == L.interp &&
                load_u64(copy + L.ts_thread_id) == t.ident;
    if (!fresh_[i]) since_all_ = kCopyAllEvery;  // its copy is now torn: never leave it stale
    return fresh_[i] != 0;
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

ThreadStates::ThreadStates(size_t slots) : files_(std::max<size_t>(1, std::min(slots, kMaxFiles))) {}

void ThreadStates::close_file(File& f) {
    struct stat st;
    if (f.fd >= 0 && ::fstat(f.fd, &st) == 0 && static_cast<uint64_t>(st.st_dev) == f.dev &&
        static_cast<uint64_t>(st.st_ino) == f.ino)
        ::close(f.fd);
    f = File{};
}

void ThreadStates::close_all() {
    for (File& f : files_) close_file(f);
}

bool ThreadStates::open_file(File& f, uint32_t tid) {
    close_file(f);
    char path[48];
    std::snprintf(path, sizeof path, "/proc/self/task/%u/syscall", tid);
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE) {  // the program needs them more
            close_all();
            short_reads_ = kShortReads;
        }
        return false;
    }
    struct stat st;
    struct rlimit lim;
    if (::fstat(fd, &st) != 0) {
        ::close(fd);
        return false;
    }
    f = File{tid, fd, static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
    // Numbers are handed out lowest first: one this close to the limit means the table is full.
    if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY &&
        static_cast<rlim_t>(fd) + 64 >= lim.rlim_cur)
        short_reads_ = kShortReads;
    return true;
}

bool ThreadStates::blocked(size_t slot, uint32_t tid) {
    // Descriptors are short: none is taken, not even for a moment, and threads count as running.
    // Now and then one open tries again.
    if (short_reads_ > 0) {
        --short_reads_;
        return false;
    }
    File& f = files_[slot % files_.size()];
    char buf[32];
    ssize_t n = -1;
    for (int attempt = 0; attempt < 2 && n <= 0; ++attempt) {
        // another thread's, or gone stale
        if ((f.tid != tid || f.fd < 0 || attempt > 0) && !open_file(f, tid)) return false;
        n = ::pread(f.fd, buf, sizeof buf - 1, 0);  // the kernel writes the file afresh at offset 0
    }
    if (short_reads_ > 0) close_all();  // this open found descriptors short
    // "running", or the number of the system call it waits in
    if (n <= 0 || buf[0] < '0' || buf[0] > '9') return false;
    buf[n] = '\0';
    return std::strtol(buf, nullptr, 10) != SYS_futex;
}

CpuClocks::CpuClocks(size_t initial_threads, uint64_t interval_ns)
    : prev_(initial_threads), cur_(initial_threads), order_(initial_threads), threshold_ns_(interval_ns / 4) {}

void CpuClocks::begin_tick(size_t threads, bool baseline) {
    read_ns_ = 0;
    skipped_now_ = 0;
    if (threads > cur_.size()) {  // as the thread list grew; prev_ keeps its baselines
        const size_t n = std::max(threads, 2 * cur_.size());
        prev_.resize(n);
        cur_.resize(n);
        order_.resize(n);
    }
    ncur_ = threads;
    std::fill(cur_.begin(), cur_.begin() + static_cast<long>(ncur_), Entry{});
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

bool CpuClocks::quiet(size_t i, uint64_t tstate, uint32_t tid) const {
    return have_base_ && !read_all_ && nprev_ >= kGateThreads && i < nprev_ && prev_[i].tid == tid &&
           tid != 0 && prev_[i].tstate == tstate && prev_[i].idle >= kIdleTicks;
}

bool CpuClocks::observe(size_t i, uint64_t tstate, uint32_t tid, uint64_t activity, bool holds_gil, bool count_new,
                        uint64_t& delta_ns) {
    const Entry* before = tid != 0 ? previous(i, tstate, tid) : nullptr;
    Entry* slot = i < ncur_ ? &cur_[i] : nullptr;
    if (gate_ && before != nullptr && before->idle >= kIdleTicks && before->activity == activity && !holds_gil) {
        if (slot != nullptr) *slot = *before;
        ++skipped_now_;
        delta_ns = 0;
        return true;
    }
    bool ok;
    uint64_t now = thread_cpu_ns(tid, ok);
    if (!ok) return false;
    if (before != nullptr && now >= before->cpu_ns) delta_ns = now - before->cpu_ns;
    else delta_ns = count_new ? now : 0;  // a new thread, or a tid reused by one
    read_ns_ += delta_ns;
    uint8_t idle = 0;
    if (before != nullptr && delta_ns == 0) idle = static_cast<uint8_t>(std::min<int>(before->idle + 1, 255));
    if (slot != nullptr) *slot = {tid, tstate, now, activity, idle};
    return true;
}

void CpuClocks::end_tick() {
    if (gating_) {
        // Read after the threads' clocks: the process's clock leaves out the time a thread
        // running on another CPU has used since that CPU's last scheduler tick, and reading the
        // thread's own clock brings it in. Read before, a busy thread's clock ran ahead of the
        // process's by up to a scheduler tick, and that noise alone read every clock at 1 tick
        // in 10.
        process_ns_ = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
        own_ns_ = clock_ns(CLOCK_THREAD_CPUTIME_ID);
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
    ordered_ = false;
}

void CpuClocks::keep_previous() { ncur_ = 0; }

}  // namespace spprof
