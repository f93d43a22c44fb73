#include "metronome.h"

#include <dirent.h>
#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <boost/asio/detail/epoll_reactor.hpp>
#include <algorithm>
#include <cstdio>
#include <cstring>

namespace spprof {

namespace {
// xorshift64*: the jitter needs no quality beyond not being periodic.
int64_t next_jitter(uint64_t& s, int64_t span) {
    s ^= s >> 12; s ^= s << 25; s ^= s >> 27;
    uint64_t r = s * 2685821657736338717ull;
    return span > 0 ? static_cast<int64_t>(r % static_cast<uint64_t>(2 * span + 1)) - span : 0;
}

bool link_is(int dir, const char* name, const char* want) {
    char target[64];
    const ssize_t n = ::readlinkat(dir, name, target, sizeof target - 1);
    if (n <= 0) return false;
    target[n] = '\0';
    return std::strcmp(target, want) == 0;
}
}  // namespace

Metronome::~Metronome() {
    if (!io_) return;
    if (lost_ || !intact()) {  // destroying would cancel (interrupt) and close numbers not ours
        for (auto& t : timers_) (void)t.release();
        (void)io_.release();
        return;
    }
    for (auto& t : timers_) t.reset();
    io_.reset();
}

bool Metronome::prepare(std::string& error) {
    try {
        io_.reset(new boost::asio::io_context());
        // the first timer makes the reactor: its epoll, eventfd and timerfd
        for (auto& t : timers_) t.reset(new boost::asio::steady_timer(*io_));
    } catch (const std::exception& e) {
        for (auto& t : timers_) t.reset();
        io_.reset();
        error = std::string("cannot create the sampler's timer (Boost.Asio: ") + e.what() + ")";
        return false;
    }
    const int failure = identify_descriptors();
    if (failure == EMFILE || failure == ENFILE) {
        error = "too few free descriptors: the sampler's timer needs 4 at start() and keeps 3 (Too many open files)";
        return false;
    }
    if (failure == ESRCH) {  // Asio went on without a timerfd, which fails only for want of descriptors
        error = "cannot create the sampler's timer: too few free descriptors (it needs 4 at start() and keeps 3)";
        return false;
    }
    // Without /proc nothing can be checked: Asio runs as it would anywhere.
    return true;
}

// The reactor registered its timerfd and its eventfd in its epoll with data pointers into the
// reactor object itself: the epoll whose two registrations point there is Asio's, whatever other
// epolls the program has. /proc/self/fdinfo shows each registration's descriptor, events and data.
// One descriptor at a time is opened for this (the directory is closed before the fdinfo files
// are read). Returns 0, or the errno that kept it from looking.
int Metronome::identify_descriptors() {
    auto& reactor = boost::asio::use_service<boost::asio::detail::epoll_reactor>(*io_);
    const uint64_t lo = reinterpret_cast<uint64_t>(&reactor), hi = lo + sizeof reactor;
    int epolls[256], timerfds[256], n_epolls = 0, n_timerfds = 0;
    DIR* dir = ::opendir("/proc/self/fd");
    if (dir == nullptr) return errno != 0 ? errno : ENOENT;
    const int dfd = ::dirfd(dir);
    while (struct dirent* ent = ::readdir(dir)) {
        const int fd = std::atoi(ent->d_name);
        if (fd == dfd) continue;
        if (n_epolls < 256 && link_is(dfd, ent->d_name, "anon_inode:[eventpoll]")) epolls[n_epolls++] = fd;
        else if (n_timerfds < 256 && link_is(dfd, ent->d_name, "anon_inode:[timerfd]")) timerfds[n_timerfds++] = fd;
    }
    ::closedir(dir);
    int failure = ESRCH;
    for (int i = 0; i < n_epolls; ++i) {
        char path[64];
        std::snprintf(path, sizeof path, "/proc/self/fdinfo/%d", epolls[i]);
        FILE* f = std::fopen(path, "re");
        if (f == nullptr) {
            failure = errno;
            continue;
        }
        char line[256];
        int tfd = -1, efd = -1, regs = 0;
        unsigned tev = 0;
        unsigned long long tdata = 0;
        while (std::fgets(line, sizeof line, f) != nullptr) {
            int n;
            unsigned ev;
            unsigned long long data;
            if (std::sscanf(line, "tfd: %d events: %x data: %llx", &n, &ev, &data) != 3) continue;
            ++regs;
            if (data < lo || data >= hi) continue;
            if (ev & EPOLLET) efd = n;  // the interrupter is edge-triggered, the timer is not
            else { tfd = n; tev = ev; tdata = data; }
        }
        std::fclose(f);
        if (regs != 2 || tfd < 0 || efd < 0 || std::find(timerfds, timerfds + n_timerfds, tfd) == timerfds + n_timerfds)
            continue;
        epfd_ = epolls[i];
        timerfd_ = tfd;
        eventfd_ = efd;
        timer_events_ = tev;
        timer_data_ = tdata;
        return 0;
    }
    return failure;
}

bool Metronome::intact() const {
    if (lost_.load(std::memory_order_relaxed)) return false;
    if (epfd_ < 0) return true;  // unknown: nothing to check (and nothing is closed after a fork)
    // epoll keys its registrations on the open file: a number reused by another file is ENOENT,
    // an epoll number reused by another epoll is ENOENT, a closed one EBADF. Re-registering the
    // same events and data changes nothing for Asio.
    struct epoll_event ev;
    std::memset(&ev, 0, sizeof ev);
    ev.events = timer_events_;
    ev.data.u64 = timer_data_;
    return ::epoll_ctl(epfd_, EPOLL_CTL_MOD, timerfd_, &ev) == 0;
}

void Metronome::arm(int t, uint64_t k) {
    const auto interval = std::chrono::nanoseconds(interval_ns_);
    // The phase walks, so that no beat stands on a grid: work that repeats at the sampling rate is
    // seen in all its phases (a 1 ms loop sampled at 1 ms on a grid with +-5% jitter had 96-99 % of
    // its samples in its first half), and the gap that weighs a sample, one interval +- half,
    // is drawn apart from where the program stood at the beat before.
    phase_ns_ += next_jitter(jitter_, static_cast<int64_t>(interval_ns_ / 2));
    armed_[t] = k;
    timers_[t]->expires_at(origin_ + interval * static_cast<int64_t>(k) + std::chrono::nanoseconds(phase_ns_));
    timers_[t]->async_wait([this, t, k](const boost::system::error_code& ec) {
        if (!ec) fire(t, k);  // else cancelled
    });
}

void Metronome::fire(int t, uint64_t k) {
    std::lock_guard<std::mutex> hold(beat_mutex_);
    // re-armed after it had expired: that beat is no longer wanted
    if (retired_ || stopping_ || armed_[t] != k) return;
    (*beat_)();
    // Before Asio touches its descriptors again (re-arming reprograms the timerfd)
    if (!intact()) {
        lost_ = true;
        return;
    }
    const auto interval = std::chrono::nanoseconds(interval_ns_);
    // past the other timer's beat too (the phase is k+1's, and beat k fired after its own
    // deadline, so this is never negative)
    const uint64_t due = static_cast<uint64_t>((clock::now() - origin_ - std::chrono::nanoseconds(phase_ns_)) / interval);
    if (due > k) {
        missed_->fetch_add(due - k, std::memory_order_relaxed);
        arm(1 - t, due + 1);
        arm(t, due + 2);
    } else {
        arm(t, k + 2);
    }
}

bool Metronome::run(const std::function<void()>& beat, std::atomic<uint64_t>& missed) {
    if (!io_ || stopping_) return true;
    beat_ = &beat;
    missed_ = &missed;
    origin_ = clock::now();
    jitter_ = 0x9E3779B97F4A7C15ull ^ static_cast<uint64_t>(origin_.time_since_epoch().count());
    phase_ns_ = 0;
    if (!intact()) {
        lost_ = true;
        return false;
    }
    arm(0, 1);
    arm(1, 2);
    // One handler at a time, so that nothing of Asio runs between a failed check and the return.
    // A timer is always left armed, so Asio's work never runs out (which would interrupt it).
    for (;;) {
        {
            std::lock_guard<std::mutex> hold(beat_mutex_);
            if (retired_) return true;
        }
        if (stopping_ || lost_ || io_->run_one() == 0) break;
    }
    return !lost_;
}

void Metronome::stop() {
    stopping_ = true;
    // Interrupting Asio is an epoll_ctl on its eventfd's number in its epoll's number.
    if (io_ && intact()) io_->stop();
}

void Metronome::retire() {
    std::lock_guard<std::mutex> hold(beat_mutex_);
    retired_ = true;
}

void Metronome::close_after_fork() {
    if (epfd_ >= 0 && intact()) {
        ::close(timerfd_);
        ::close(eventfd_);
        ::close(epfd_);
    }
    epfd_ = timerfd_ = eventfd_ = -1;
    lost_ = true;
}

}  // namespace spprof
