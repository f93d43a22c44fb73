#include "native_ids.h"

#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bytes.h"

namespace spprof {

namespace {
size_t slot_of(uint64_t ident) { return static_cast<size_t>(mix64(0, ident) & (NativeIds::kSlots - 1)); }
}  // namespace

void NativeIds::write(Slot& s, uint64_t ident, uint32_t tid) {
    const uint32_t q = s.seq.load(std::memory_order_relaxed);
    s.seq.store(q + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    s.tid.store(tid, std::memory_order_relaxed);
    s.ident.store(ident, std::memory_order_relaxed);
    s.seq.store(q + 2, std::memory_order_release);
}

void NativeIds::put(uint64_t ident, uint32_t tid) {
    if (ident == 0) return;
    const size_t home = slot_of(ident);
    for (size_t i = 0; i < kProbe; ++i) {
        Slot& s = slots_[(home + i) & (kSlots - 1)];
        const uint64_t cur = s.ident.load(std::memory_order_relaxed);  // only this writer changes it
        if (cur == ident || cur == 0) return write(s, ident, tid);
    }
    // A full window: the first thread of it that has exited makes room. Its tid may have gone to
    // a live thread since; that entry then stays until that thread exits too.
    const pid_t pid = ::getpid();
    for (size_t i = 0; i < kProbe; ++i) {
        Slot& s = slots_[(home + i) & (kSlots - 1)];
        const uint32_t old = s.tid.load(std::memory_order_relaxed);
        if (old == 0 || (::syscall(SYS_tgkill, pid, static_cast<pid_t>(old), 0) != 0 && errno == ESRCH)) {
            evicted_.fetch_add(1, std::memory_order_relaxed);
            return write(s, ident, tid);
        }
    }
    not_stored_.fetch_add(1, std::memory_order_relaxed);
}

uint32_t NativeIds::get(uint64_t ident) const {
    const size_t home = slot_of(ident);
    for (size_t i = 0; i < kProbe; ++i) {
        const Slot& s = slots_[(home + i) & (kSlots - 1)];
        for (int attempt = 0; attempt < 4; ++attempt) {
            const uint32_t q = s.seq.load(std::memory_order_acquire);
            if (q & 1) continue;  // being written
            const uint64_t cur = s.ident.load(std::memory_order_relaxed);
            const uint32_t tid = s.tid.load(std::memory_order_relaxed);
            std::atomic_thread_fence(std::memory_order_acquire);
            if (s.seq.load(std::memory_order_relaxed) != q) continue;
            if (cur == 0) return 0;
            if (cur == ident) return tid;
            break;
        }
    }
    return 0;
}

}  // namespace spprof
