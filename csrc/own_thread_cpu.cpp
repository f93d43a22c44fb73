#include "own_thread_cpu.h"

#include <unistd.h>

#include "kernel_clock.h"

namespace spprof {

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

}  // namespace spprof
