#include "thread_states.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace spprof {

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

}  // namespace spprof
