// Beats at absolute deadlines (start + k·interval, with a random jitter of ±5% so that periodic
// work is not aliased) on the thread that calls run(), with a Boost.Asio io_context.
//
// Two steady_timers take turns: while one beat runs, the other is already armed for the next, so
// re-arming the first (for the beat after) is never the earliest deadline and the reactor
// reprograms its timerfd once per beat instead of twice, a system call saved on every tick.
// Beats missed because the machine was busy are skipped and counted, never fired back to back.
//
// Safety contract: run() allocates only while it arms the two timers at its start; stop() may be
// called from any thread, also before run() has started (run() then returns at once).
#pragma once

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <cstdint>
#include <functional>

namespace spprof {

class Metronome {
public:
    explicit Metronome(uint64_t interval_ns) : interval_ns_(interval_ns) {}
    // Calls beat() until stop(); adds the beats skipped for lateness to `missed`.
    void run(const std::function<void()>& beat, std::atomic<uint64_t>& missed);
    void stop() {
        stopping_ = true;
        io_.stop();
    }

private:
    const uint64_t interval_ns_;
    std::atomic<bool> stopping_{false};
    boost::asio::io_context io_;
};

}  // namespace spprof
