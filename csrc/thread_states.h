// Whether a thread is blocked in the kernel, from /proc/self/task/TID/syscall.
//
// Safety contract: runs on the sampler thread only, without the GIL; it holds at most kMaxFiles
// descriptors and gives them all up when the process runs short of them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace spprof {

// Whether a thread waits in a system call other than futex now (asleep, polling, reading). A futex wait is the GIL's or a lock's, and a thread
// that runs or cannot be read counts as not blocked. The files of up to kMaxFiles threads stay
// open, so a read costs one pread instead of open, read and close. When descriptors run short
// (EMFILE or ENFILE, or a number within 64 of the soft limit) they are all given up and the next
// kShortReads reads take none (those threads count as running). A number is closed only while
// it still holds the file opened (the program may have closed it and reused it).
class ThreadStates {
public:
    explicit ThreadStates(size_t slots);
    static constexpr size_t kMaxFiles = 16;
    static constexpr unsigned kShortReads = 10000;
    ~ThreadStates() { close_all(); }
    ThreadStates(const ThreadStates&) = delete;
    ThreadStates& operator=(const ThreadStates&) = delete;
    bool blocked(size_t slot, uint32_t tid);
    void close_all();

private:
    struct File { uint32_t tid = 0; int fd = -1; uint64_t dev = 0, ino = 0; };
    void close_file(File& f);
    bool open_file(File& f, uint32_t tid);
    std::vector<File> files_;
    unsigned short_reads_ = 0;  // reads left that open nothing, after a shortage
};

}  // namespace spprof
