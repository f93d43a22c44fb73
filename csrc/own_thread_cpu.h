// The CPU time used by one of spprof's own threads (the sampler, the collector).
//
// Safety contract: begin() and end() run on that thread; ns() from any thread, at any time.
#pragma once

#include <atomic>
#include <cstdint>

namespace spprof {

// Read through the thread's tid while it runs, so the thread itself spends no system call on it,
// and from the value it left at end() afterwards.
class OwnThreadCpu {
public:
    void begin();  // first thing on the thread
    void end();    // last thing on the thread
    uint64_t ns() const;
    uint32_t tid() const { return tid_.load(); }  // 0 before begin() and after end()

private:
    std::atomic<uint32_t> tid_{0};
    std::atomic<uint64_t> final_ns_{0};
};

}  // namespace spprof
