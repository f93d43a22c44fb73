#include "metronome.h"

#include <boost/asio/steady_timer.hpp>
#include <chrono>

namespace spprof {

namespace {
// xorshift64*: the jitter needs no quality beyond not being periodic.
struct Jitter {
    uint64_t s;
    int64_t next(int64_t span) {
        s ^= s >> 12; s ^= s << 25; s ^= s >> 27;
        uint64_t r = s * 2685821657736338717ull;
        return span > 0 ? static_cast<int64_t>(r % static_cast<uint64_t>(2 * span + 1)) - span : 0;
    }
};
}  // namespace

void Metronome::run(const std::function<void()>& beat, std::atomic<uint64_t>& missed) {
    using clock = std::chrono::steady_clock;
    const auto interval = std::chrono::nanoseconds(interval_ns_);
    const auto origin = clock::now();
    const int64_t span = static_cast<int64_t>(interval_ns_ / 20);  // +-5%
    Jitter jitter{0x9E3779B97F4A7C15ull ^ static_cast<uint64_t>(origin.time_since_epoch().count())};
    boost::asio::steady_timer timers[2] = {boost::asio::steady_timer(io_), boost::asio::steady_timer(io_)};
    uint64_t armed[2] = {0, 0};  // the beat each timer is armed for

    std::function<void(int, uint64_t)> arm = [&](int t, uint64_t k) {
        armed[t] = k;
        timers[t].expires_at(origin + interval * static_cast<int64_t>(k) + std::chrono::nanoseconds(jitter.next(span)));
        timers[t].async_wait([&, t, k](const boost::system::error_code& ec) {
            // cancelled, or re-armed after it had expired: that beat is no longer wanted
            if (ec || stopping_ || armed[t] != k) return;
            beat();
            const uint64_t due = static_cast<uint64_t>((clock::now() - origin) / interval);
            if (due > k) {  // late: the other timer's beat has passed too
                missed.fetch_add(due - k, std::memory_order_relaxed);
                arm(1 - t, due + 1);
                arm(t, due + 2);
            } else {
                arm(t, k + 2);
            }
        });
    };
    if (stopping_) return;
    arm(0, 1);
    arm(1, 2);
    io_.run();
}

}  // namespace spprof
