// Beats at absolute deadlines (start + k·interval + a phase that walks by up to ±interval/2 a
// beat, so that periodic work is not aliased) on the thread that calls run(), with a Boost.Asio
// io_context.
//
// Two steady_timers take turns: while one beat runs, the other is already armed for the next, so
// re-arming the first (for the beat after) is never the earliest deadline and the reactor
// reprograms its timerfd once per beat instead of twice, a system call saved on every tick.
// Beats missed because the machine was busy are skipped and counted, never fired back to back.
//
// Asio's three descriptors (its epoll, timerfd and eventfd) live in the application's descriptor
// table, where a program that closes descriptors it does not own can close them and reuse their
// numbers for its own files. Asio then must never run again: an epoll_wait, a timerfd_settime, an
// interrupt or a close on a reused number would act on the application's file. intact() tells, in
// one epoll_ctl, whether the epoll and the timerfd are still the ones Asio registered; the loop
// checks it after every beat, before Asio touches a descriptor again, and stop() before it
// interrupts Asio. A Metronome whose descriptors were lost is never destroyed (its io_context
// would close the numbers): its owner leaks it.
//
// Safety contract: prepare() creates everything that can fail, on the calling thread; run()
// allocates only while it arms the two timers; stop() and retire() may be called from any thread,
// also before run() has started (run() then returns at once).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

namespace spprof {

class Metronome {
public:
    explicit Metronome(uint64_t interval_ns) : interval_ns_(interval_ns) {}
    ~Metronome();
    Metronome(const Metronome&) = delete;
    Metronome& operator=(const Metronome&) = delete;

    // Creates the io_context, its reactor and both timers, and learns which descriptors are Asio's.
    // False with a reason when Asio cannot work here (no descriptors left, epoll refused).
    bool prepare(std::string& error);
    // Calls beat() until stop() or retire(), or until Asio's descriptors are no longer its own;
    // adds the beats skipped for lateness to `missed`. False when the descriptors were lost.
    // Exceptions from Asio or beat() go to the caller.
    bool run(const std::function<void()>& beat, std::atomic<uint64_t>& missed);
    void stop();
    // Whether Asio's epoll and timerfd are still the files it registered (always true when they
    // could not be identified at prepare(), where nothing can be checked).
    bool intact() const;
    bool verified() const { return epfd_ >= 0; }
    // After this returns, beat() is not called again, whatever run()'s thread is doing.
    void retire();
    // In a forked child: closes Asio's descriptors (when still its own) and forgets them; the
    // Metronome must then be leaked, never run nor destroyed.
    void close_after_fork();
    // Set by run()'s thread as its last act, so that others can wait for it with a bound.
    void mark_ended() { ended_.store(true, std::memory_order_release); }
    bool ended() const { return ended_.load(std::memory_order_acquire); }

private:
    using clock = std::chrono::steady_clock;
    void arm(int t, uint64_t k);
    void fire(int t, uint64_t k);
    int identify_descriptors();

    const uint64_t interval_ns_;
    std::atomic<bool> stopping_{false}, lost_{false}, ended_{false};
    bool retired_ = false;  // under beat_mutex_
    std::mutex beat_mutex_;
    std::unique_ptr<boost::asio::io_context> io_;
    std::unique_ptr<boost::asio::steady_timer> timers_[2];
    // run()'s state, read by the timers' handlers
    const std::function<void()>* beat_ = nullptr;
    std::atomic<uint64_t>* missed_ = nullptr;
    clock::time_point origin_;
    uint64_t armed_[2] = {0, 0};  // the beat each timer is armed for
    uint64_t jitter_ = 0;
    int64_t phase_ns_ = 0;  // the last armed beat's offset from its k·interval
    // Asio's descriptors and what it registered for the timerfd in its epoll; -1 when unknown
    int epfd_ = -1, timerfd_ = -1, eventfd_ = -1;
    uint32_t timer_events_ = 0;
    uint64_t timer_data_ = 0;
};

}  // namespace spprof
