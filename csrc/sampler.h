// The sampler thread: a Boost.Asio steady_timer on absolute deadlines drives one tick per
// interval; each tick picks threads, captures their stacks and pushes the samples.
//
// Safety contract: the thread never takes the GIL, never calls the C API, never allocates after
// start() but to grow its thread buffers (a tick that finds more threads than they hold, never
// per sample) and never blocks on anything the application can hold. It pushes to the queue without
// waiting: a full queue drops the sample and counts it.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "asyncio_tasks.h"
#include "cpu_clocks.h"
#include "frame_capture.h"
#include "gil_waits.h"
#include "last_stacks.h"
#include "layout.h"
#include "metronome.h"
#include "native_ids.h"
#include "native_threads.h"
#include "own_thread_cpu.h"
#include "safe_read.h"
#include "sample_queue.h"
#include "thread_list.h"
#include "thread_states.h"
#include "waiting_tasks.h"

namespace spprof {

struct SamplerOptions {
    uint64_t interval_ns = 10'000'000;
    bool wall = false;
    int max_depth = 128;
    bool native_threads = true;  // cpu mode: the CPU of threads Python does not know, as samples
};

struct SamplerCounters {
    std::atomic<uint64_t> ticks{0};
    std::atomic<uint64_t> missed_ticks{0};
    std::atomic<uint64_t> collected{0};
    std::atomic<uint64_t> dropped_full{0};
    std::atomic<uint64_t> torn{0};         // walks rejected after every retry
    std::atomic<uint64_t> torn_charged{0}; // ... whose weight went to <unknown>
    std::atomic<uint64_t> retries{0};
    std::atomic<uint64_t> cut_after_tear{0};  // taken again after a torn walk: <unknown> for the frames the two did not agree on
    std::atomic<uint64_t> torn_lists{0};
    std::atomic<uint64_t> lists_cut{0};   // ticks whose thread list was longer than the bound
    std::atomic<uint64_t> unidentified{0};
    std::atomic<uint64_t> threads_max{0};
    std::atomic<uint64_t> reads{0};       // system calls spent reading memory
    std::atomic<uint64_t> before_block{0};  // cpu-mode samples charged to where the thread last ran
    std::atomic<uint64_t> gil_waits{0};     // cpu-mode samples of threads found waiting for the GIL by their stack
    std::atomic<uint64_t> states_stale{0};  // thread states not copied at a tick (quiet threads)
    std::atomic<uint64_t> stacks_reused{0};  // wall-mode samples of threads that had not run: not walked
    std::atomic<uint64_t> descriptors_lost{0};  // the timer's descriptors closed by the program
    std::atomic<uint64_t> timer_restarts{0};    // fresh timers started after such a loss
    std::atomic<uint64_t> errors{0};            // failures that ended sampling (out of memory...)
    std::atomic<bool> sampling_stopped{false};  // sampling ended before stop(): see the counters above
};

class Sampler {
public:
    Sampler(const spprof_layout& layout, const SamplerOptions& opts, SampleQueue& queue, DrainSignal& drain,
            const NativeIds& ids);
    ~Sampler();
    // Opens the reader, creates the timer and takes the CPU baseline on the calling thread, then
    // starts the timer thread. False with a reason when it cannot sample here.
    bool start(const std::string& forced_reader, std::string& error);
    // Only the reader and the baseline, for tick() driven by the caller (spprof._bench).
    bool open(const std::string& forced_reader, std::string& error);
    uint64_t reads() const { return reader_.syscalls(); }
    uint64_t cpu_ns() const { return cpu_.ns(); }  // the sampler thread's own CPU time
    // No tick runs after it. True once the thread has ended; false when it did not end within a
    // bound (asleep on descriptors the program closed): it then may still touch this object,
    // which must be leaked with everything the thread uses.
    bool stop();
    // From the collector's thread, now and then: when the program closed the timer's descriptors,
    // the sampler thread is ended or abandoned and a fresh one with a fresh timer takes over.
    void watch();
    // In a forked child, where the thread does not exist: closes its descriptors only.
    void close_after_fork() {
        reader_.close();
        states_.close_all();
        if (metronome_) metronome_->close_after_fork();
    }
    const SamplerCounters& counters() const { return counters_; }
    const char* reader_name() const { return reader_.method_name(); }
    const FrameCapture& capture() const { return capture_; }
    const AsyncioTasks& tasks() const { return tasks_; }
    const WaitingTasks& waiting() const { return waiting_; }
    const CpuClocks& clocks() const { return clocks_; }
    const NativeThreads& natives() const { return natives_; }
    // The collector's thread, left out of the native threads' CPU (it is counted as spprof's own).
    void set_collector(const OwnThreadCpu* collector) { collector_ = collector; }
    // Continuous profiling's own Python threads (its exporter and sender), by their ident: never
    // sampled, so that their clocks are not read at every tick. False when kIgnored are set.
    static constexpr size_t kIgnored = 4;
    bool ignore_thread(uint64_t ident);

    // One tick's work, also driven by spprof._bench. `t_ns` is the tick's monotonic time.
    void tick(uint64_t t_ns, bool count_new);

private:
    void run(Metronome* m);
    bool start_thread(std::string& error);
    // Ends the thread of metronome_: joined when it ends within `bound`, else abandoned (false).
    bool end_thread(std::chrono::milliseconds bound);
    void take_baseline();
    // Queues one sample and counts it as collected, or as dropped when the queue is full.
    void push(const ThreadSeen& t, uint64_t t_ns, uint64_t weight, int depth, uint16_t flags);
    // Whether a walk holds a code object this sampler has not seen lately: the collector must
    // name it soon, while it still lives.
    bool new_code(const FrameRecord* frames, int depth);
    // cpu mode: reads the native threads' CPU (every ~100 ms) and queues it as samples.
    void read_native(uint64_t t_ns, bool baseline);

    const spprof_layout& L;
    SamplerOptions opts_;
    SampleQueue& queue_;
    DrainSignal& drain_;
    const size_t half_queue_;
    struct SeenCode { uint64_t code = 0, fingerprint = 0; };
    std::vector<SeenCode> seen_code_;  // direct-mapped by address
    SafeReader reader_;
    ThreadList threads_;
    CpuClocks clocks_;
    ThreadStates states_;
    FrameCapture capture_;
    GilWaits gil_waits_;
    AsyncioTasks tasks_;
    WaitingTasks waiting_;  // wall mode: where the suspended tasks wait
    std::unique_ptr<Metronome> metronome_;  // leaked, never destroyed, when its descriptors were lost
    std::mutex control_;                    // start, stop and watch
    std::vector<SampleCell> cells_;
    SamplerCounters counters_;
    std::thread thread_;
    bool stopping_ = false, abandoned_ = false;  // under control_
    OwnThreadCpu cpu_;
    // cpu mode: each thread's stack at the last tick that found it running, by thread_slot().
    // Fresh until the thread's next tick with CPU time: an older stack says little about where
    // a thread that mostly waits spent its last burst.
    // `handover`: the last sample that found it without the GIL found it where the GIL is handed over.
    struct LastRun { uint64_t tstate = 0; uint32_t tid = 0; int depth = 0; bool truncated = false;
                     bool fresh = false; bool handover = false; std::vector<FrameRecord> frames; };
    std::vector<LastRun> last_run_;
    LastStacks stacks_;  // wall mode
    uint64_t last_tick_ns_ = 0;  // wall mode: the previous tick that sampled, or the start
    NativeThreads natives_;
    const OwnThreadCpu* collector_ = nullptr;
    uint64_t python_cpu_ns_ = 0;  // cpu mode: the weight of every Python sample so far
    std::atomic<uint64_t> ignored_[kIgnored] = {};  // set from Python, read by every tick
    std::atomic<size_t> n_ignored_{0};
    bool ignored(uint64_t ident) const;
};

uint64_t monotonic_ns();

}  // namespace spprof
