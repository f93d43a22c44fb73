// The kernel's clocks in nanoseconds, a thread's CPU clock read by its tid among them.
//
// Safety contract: plain system calls, callable from any thread, with or without the GIL.
#pragma once

#include <time.h>

#include <cstdint>

namespace spprof {

// A kernel clock in nanoseconds; `ok` false (and 0) when it cannot be read.
uint64_t clock_ns(clockid_t id, bool& ok);
inline uint64_t clock_ns(clockid_t id) {
    bool ok;
    return clock_ns(id, ok);
}
uint64_t thread_cpu_ns(uint32_t tid, bool& ok);

}  // namespace spprof
