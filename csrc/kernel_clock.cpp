#include "kernel_clock.h"


namespace spprof {

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

}  // namespace spprof
