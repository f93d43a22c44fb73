// spprof's own threads block every signal, so that the kernel never picks one of them for a
// process-directed signal the program blocked in its own threads (and meant to take with
// sigwait): such a signal would run the default action (often: end the process) on our thread.
// A new thread inherits its creator's mask: it is created with everything blocked, and the
// creator's mask is restored after.
#pragma once

#include <pthread.h>
#include <signal.h>

#include <thread>
#include <utility>

namespace spprof {

template <class F>
std::thread start_quiet_thread(F&& body) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    try {
        std::thread t(std::forward<F>(body));
        pthread_sigmask(SIG_SETMASK, &old, nullptr);
        return t;
    } catch (...) {
        pthread_sigmask(SIG_SETMASK, &old, nullptr);
        throw;
    }
}

}  // namespace spprof
