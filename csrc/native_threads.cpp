#include "native_threads.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "kernel_clock.h"

namespace spprof {

namespace {
constexpr size_t kInitialThreads = 256;
constexpr size_t kDentsBytes = 32 * 1024;

struct LinuxDirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

// The files here are opened, read and closed by direct system calls. ThreadSanitizer treats a
// descriptor number as memory: a sampler thread abandoned asleep on lost descriptors (see
// metronome.h) keeps an access to its epoll's number, and any later close of that number,
// reused for a short-lived file like these, would be reported against it.
int sys_open_at(int dir, const char* path, int flags) { return static_cast<int>(::syscall(SYS_openat, dir, path, flags)); }
void sys_close(int fd) { (void)::syscall(SYS_close, fd); }

uint64_t boot_ticks() {
    static const long hz = ::sysconf(_SC_CLK_TCK);
    return clock_ns(CLOCK_BOOTTIME) / (1000000000ull / static_cast<uint64_t>(hz > 0 ? hz : 100));
}
}  // namespace

NativeThreads::NativeThreads(uint64_t interval_ns)
    : period_ns_(std::max(interval_ns, kPeriodNs) - interval_ns / 2),  // the tick nearest 100 ms
      dents_(kDentsBytes) {
    tids_.reserve(kInitialThreads);
    python_.reserve(kInitialThreads);
    prev_.reserve(kInitialThreads);
    cur_.reserve(kInitialThreads);
    charges_.reserve(kInitialThreads);
}

int NativeThreads::open_file(const char* path, int flags) {
    if (short_reads_ > 0) {  // descriptors ran short lately: none is taken, not even for a moment
        --short_reads_;
        return -1;
    }
    const int fd = sys_open_at(AT_FDCWD, path, flags | O_RDONLY | O_CLOEXEC);
    struct rlimit lim;
    // Numbers are handed out lowest first: one this close to the limit means the table is full.
    if ((fd < 0 && (errno == EMFILE || errno == ENFILE)) ||
        (fd >= 0 && ::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY &&
         static_cast<rlim_t>(fd) + 64 >= lim.rlim_cur)) {
        if (fd >= 0) sys_close(fd);
        short_reads_ = kShortReads;
        return -1;
    }
    return fd;
}

bool NativeThreads::list_tasks() {
    tids_.clear();
    const int dir = open_file("/proc/self/task", O_DIRECTORY);
    if (dir < 0) return false;
    bool ok = true;
    for (;;) {
        const long n = ::syscall(SYS_getdents64, dir, dents_.data(), dents_.size());
        if (n <= 0) {
            ok = n == 0;
            break;
        }
        for (long off = 0; off < n;) {
            const auto* d = reinterpret_cast<const LinuxDirent64*>(dents_.data() + off);
            off += d->d_reclen;
            char* end = nullptr;
            const unsigned long tid = std::strtoul(d->d_name, &end, 10);
            if (end != d->d_name && *end == '\0' && tid != 0 && tid <= UINT32_MAX) tids_.push_back(static_cast<uint32_t>(tid));
        }
    }
    sys_close(dir);
    std::sort(tids_.begin(), tids_.end());
    return ok;
}

bool NativeThreads::read_stat(uint32_t tid, char (&comm)[16], uint64_t& start_ticks) {
    char path[48], buf[512];
    std::snprintf(path, sizeof path, "/proc/self/task/%u/stat", tid);
    const int fd = open_file(path, 0);
    if (fd < 0) return false;
    const long n = ::syscall(SYS_read, fd, buf, sizeof buf - 1);
    sys_close(fd);
    if (n <= 0) return false;
    buf[n] = '\0';
    // "tid (comm) state ppid ...": the name may hold spaces and parentheses, so it ends at the last ')'
    const char* open = std::strchr(buf, '(');
    const char* close = std::strrchr(buf, ')');
    if (open == nullptr || close == nullptr || close < open) return false;
    const size_t len = std::min<size_t>(static_cast<size_t>(close - open - 1), sizeof comm - 1);
    std::memcpy(comm, open + 1, len);
    comm[len] = '\0';
    // the start time is field 22; the state after the name is field 3
    const char* p = close + 1;
    for (int field = 3; field <= 22; ++field) {
        while (*p == ' ') ++p;
        if (*p == '\0') return false;
        if (field == 22) {
            start_ticks = std::strtoull(p, nullptr, 10);
            return true;
        }
        while (*p != ' ' && *p != '\0') ++p;
    }
    return false;
}

void NativeThreads::first_sight(uint32_t tid, uint64_t clock_ns, bool baseline) {
    Entry e{tid, State::Native, clock_ns, 0, {0}};
    if (!read_stat(tid, e.comm, e.start_ticks)) {
        lost_.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    if (!baseline && have_base_ && e.start_ticks + 1 >= prev_read_ticks_) {
        e.state = State::Pending;
        e.cpu_ns = 0;
    }
    cur_.push_back(e);
}

bool NativeThreads::unaccounted(uint64_t python_ns, uint64_t own_ns) {
    const uint64_t process = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    // a restarted sampler thread's clock starts again from 0: then more seems unaccounted, never less
    const int64_t used = static_cast<int64_t>(process - process_prev_) - static_cast<int64_t>(python_ns - python_prev_) -
                         std::max<int64_t>(0, static_cast<int64_t>(own_ns - own_prev_));
    process_prev_ = process;
    python_prev_ = python_ns;
    own_prev_ = own_ns;
    unaccounted_ns_ = std::max<int64_t>(0, unaccounted_ns_ + used);
    if (unaccounted_ns_ >= kUnaccountedNs) return true;
    skipped_.fetch_add(1, std::memory_order_relaxed);
    return false;
}

void NativeThreads::read(uint64_t t_ns, uint32_t collector_tid, bool baseline) {
    last_ns_ = t_ns;
    unaccounted_ns_ = 0;
    if (baseline) process_prev_ = clock_ns(CLOCK_PROCESS_CPUTIME_ID);  // the samples count from here too
    charges_.clear();
    cur_.clear();
    const uint64_t ticks_now = boot_ticks();
    if (!list_tasks()) {
        lost_.fetch_add(1, std::memory_order_relaxed);
        return;  // the previous read stays the baseline
    }
    std::sort(python_.begin(), python_.end());
    const uint32_t self = static_cast<uint32_t>(::gettid());
    auto prev = prev_.cbegin();
    uint64_t native = 0;
    for (const uint32_t tid : tids_) {
        while (prev != prev_.cend() && prev->tid < tid) ++prev;  // both sorted by tid
        const Entry* before = prev != prev_.cend() && prev->tid == tid ? &*prev : nullptr;
        if (tid == self || tid == collector_tid) continue;
        if (std::binary_search(python_.begin(), python_.end(), tid)) {
            cur_.push_back(Entry{tid, State::Python, 0, 0, {0}});
            continue;
        }
        ++native;
        bool ok;
        const uint64_t clock = thread_cpu_ns(tid, ok);
        if (!ok) {  // exited since the listing
            lost_.fetch_add(1, std::memory_order_relaxed);
            continue;
        }
        // Left the interpreter's list (its thread state ended, the thread runs on): counted from now.
        if (before == nullptr || before->state == State::Python || clock < before->cpu_ns) {
            first_sight(tid, clock, baseline || (before != nullptr && before->state == State::Python));
            continue;
        }
        Entry e = *before;
        e.state = State::Native;
        e.cpu_ns = clock;
        const uint64_t used = clock - before->cpu_ns;
        if (used != 0 && !baseline) {
            // Its current name, and whether it is still the thread of the previous read.
            uint64_t start = 0;
            if (!read_stat(tid, e.comm, start)) {
                lost_.fetch_add(1, std::memory_order_relaxed);
                continue;
            }
            if (start != before->start_ticks) {  // a new thread took the tid: its own CPU counts
                first_sight(tid, clock, false);
                continue;
            }
            NativeCharge c{tid, used, {0}};
            std::memcpy(c.comm, e.comm, sizeof c.comm);
            charges_.push_back(c);
        }
        cur_.push_back(e);
    }
    std::swap(prev_, cur_);
    prev_read_ticks_ = ticks_now;
    have_base_ = true;
    reads_.fetch_add(1, std::memory_order_relaxed);
    if (native > seen_max_.load(std::memory_order_relaxed)) seen_max_.store(native, std::memory_order_relaxed);
}

}  // namespace spprof
