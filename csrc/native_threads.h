// The CPU of the process's threads that are not in the interpreter's thread list (a C library's
// own workers: BLAS, gRPC, Arrow, PyTorch), found in /proc/self/task and named by their comm.
//
// Safety contract: runs on one thread at a time (the sampler's; stop()'s once it ended), without
// the GIL, and never reads interpreter memory. It holds no descriptor between reads and at most
// one during a read, none at all for a while once descriptors ran short; its buffers are sized at construction and grow only when the process has more threads than they
// hold. counters are read from any thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace spprof {

// What one thread used since the previous read.
struct NativeCharge {
    uint32_t tid;
    uint64_t cpu_ns;
    char comm[16];  // NUL-terminated, as the kernel keeps it
};

// A read lists the tasks (getdents), leaves out the Python threads
// and spprof's own, and reads each other thread's CPU clock by its tid (one system call). Only a
// thread whose clock advanced pays for more: its `stat` file, read afresh for its current name
// and its start time, which tells a tid reused by a new thread from the old one.
//
// A thread first seen after the baseline (started meanwhile, or a tid reused) is charged nothing
// until the next read, and then all its CPU since it started, unless it is a Python thread by
// then: a thread just started by `threading` may reach /proc before the interpreter's list, and
// its CPU is the Python side's to charge. A thread whose clock or file cannot be read (it exited
// between the listing and the read, descriptors ran short) is dropped and counted; the CPU a
// thread used between its last read and its exit is not in the profile (the process's CPU is).
class NativeThreads {
public:
    explicit NativeThreads(uint64_t interval_ns);
    NativeThreads(const NativeThreads&) = delete;
    NativeThreads& operator=(const NativeThreads&) = delete;
    // Whether to read now: at most every kPeriodNs (100 ms), and only when the process used
    // kUnaccountedNs of CPU that neither the Python threads' samples (`python_ns`, their total
    // so far) nor spprof's own threads (`own_ns`, their clocks) account for. Listing the tasks
    // costs the kernel about a microsecond a thread, Python's included: a server with 1000 idle
    // threads and no busy native one would pay it for nothing. The reads' deltas are exact
    // whenever they happen, so this only decides when CPU is charged, never how much.
    static constexpr uint64_t kPeriodNs = 100'000'000;
    static constexpr int64_t kUnaccountedNs = 2'000'000;
    bool due(uint64_t t_ns) {
        if (t_ns < last_ns_ + period_ns_) return false;
        last_ns_ = t_ns;
        return true;
    }
    bool unaccounted(uint64_t python_ns, uint64_t own_ns);
    // Before read(): the tids of the interpreter's threads now (in any order), and of spprof's
    // collector thread (0 when unknown); the calling thread is left out by itself.
    void python_tids_begin() { python_.clear(); }
    void python_tid(uint32_t tid) { if (tid != 0) python_.push_back(tid); }
    // Lists and reads the threads; `baseline` only sets where the next read counts from. The
    // charges are in charges() until the next read.
    void read(uint64_t t_ns, uint32_t collector_tid, bool baseline);
    const std::vector<NativeCharge>& charges() const { return charges_; }

    uint64_t reads() const { return reads_.load(std::memory_order_relaxed); }
    uint64_t skipped() const { return skipped_.load(std::memory_order_relaxed); }
    uint64_t lost() const { return lost_.load(std::memory_order_relaxed); }
    uint64_t seen_max() const { return seen_max_.load(std::memory_order_relaxed); }

private:
    enum class State : uint8_t { Native, Pending, Python };
    struct Entry {
        uint32_t tid;
        State state;
        uint64_t cpu_ns;       // the clock at the last read, or 0 for a Pending thread
        uint64_t start_ticks;  // its start, in clock ticks after boot (stat's field 22)
        char comm[16];
    };
    // After a descriptor shortage (EMFILE, ENFILE, or a number within 64 of the soft limit) the
    // next kShortReads opens take none, as csrc/thread_states.h does.
    static constexpr unsigned kShortReads = 100;
    int open_file(const char* path, int flags);
    bool list_tasks();
    // The thread's name and start time from /proc/self/task/TID/stat; false when unreadable.
    bool read_stat(uint32_t tid, char (&comm)[16], uint64_t& start_ticks);
    // A thread first seen now, or whose tid a new thread took: Pending when it may have started
    // after the previous read (all its CPU then counts at the next read), else counted from now.
    void first_sight(uint32_t tid, uint64_t clock_ns, bool baseline);

    const uint64_t period_ns_;
    uint64_t last_ns_ = 0;
    uint64_t prev_read_ticks_ = 0;  // boot-time ticks at the previous read
    unsigned short_reads_ = 0;
    bool have_base_ = false;
    // unaccounted(): the clocks at its previous call, and the CPU no one accounted for since the last read
    uint64_t process_prev_ = 0, python_prev_ = 0, own_prev_ = 0;
    int64_t unaccounted_ns_ = 0;
    std::vector<char> dents_;
    std::vector<uint32_t> tids_, python_;
    std::vector<Entry> prev_, cur_;
    std::vector<NativeCharge> charges_;
    std::atomic<uint64_t> reads_{0}, skipped_{0}, lost_{0}, seen_max_{0};
};

}  // namespace spprof
