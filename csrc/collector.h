// The collector: the only consumer of the sample queue. It drains samples on its own thread,
// interns stacks and resolves frames, so the sampler never waits and the GIL is never needed.
//
// Safety contract: runs on its own native thread without the GIL; reads interpreter memory only
// through its own SafeReader. Its tables are handed over by finish(), after the thread ended.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "layout.h"
#include "profile_data.h"
#include "safe_read.h"
#include "sample_queue.h"
#include "symbols.h"
#include "own_thread_cpu.h"

namespace spprof {

class Collector {
public:
    Collector(const spprof_layout& layout, SampleQueue& queue, DrainSignal& signal, int max_depth,
              uint64_t memory_limit);
    ~Collector();
    bool start(const std::string& forced_reader, std::string& error);
    // Only the reader, for drain() driven by the caller (spprof._bench).
    bool open(const std::string& forced_reader, std::string& error);
    // Called on the collector's thread at each of its wakes (at least every 250 ms): the sampler's
    // watch. Set before start().
    void set_watch(std::function<void()> watch) { watch_ = std::move(watch); }
    // Stops the thread after a last drain and hands over the tables. Needs no GIL.
    std::unique_ptr<ProfileData> finish();
    // A window cut while the sampler runs on (continuous profiling): drains the queue, then hands
    // over the samples of ticks up to `edge_ns` (monotonic) with only the symbols, frames, stacks
    // and threads they use; later samples stay for the next window. When the tables kept for
    // interning pass half the memory bound they start afresh, and `edge_ns` then moves forward
    // to the last sample drained so that none is left referring to them. Null after finish().
    std::unique_ptr<ProfileData> cut(uint64_t& edge_ns);
    // Samples of a tick before an edge that reached the collector after that edge's cut: they
    // are counted in the next window, never lost.
    uint64_t late_at_edge() const { return late_at_edge_.load(std::memory_order_relaxed); }
    uint64_t tables_started_afresh() const { return afresh_.load(std::memory_order_relaxed); }
    // In a forked child, where the thread does not exist: closes the reader's descriptors only.
    void close_reader_after_fork() { reader_.close(); }

    uint64_t samples() const { return samples_.load(std::memory_order_relaxed); }
    uint64_t dropped_memory() const { return dropped_memory_.load(std::memory_order_relaxed); }
    uint64_t bytes_held() const { return bytes_held_.load(std::memory_order_relaxed); }
    uint64_t unverified() const { return unverified_.load(std::memory_order_relaxed); }
    uint64_t errors() const { return errors_.load(std::memory_order_relaxed); }

    uint64_t cpu_ns() const { return cpu_.ns(); }  // the collector thread's own CPU time
    const OwnThreadCpu& own_cpu() const { return cpu_; }

    // Drains everything queued now; on the collector thread, or by spprof._bench with no thread.
    void drain();

private:
    void run();
    void drain_locked();
    void start_afresh();
    void ingest(const SampleHeader& h, const FrameRecord* frames);
    void ingest_or_throw(const SampleHeader& h, const FrameRecord* frames);
    uint32_t intern_stack(uint64_t task);
    bool grow_samples();
    size_t held_now() const;  // the tables' bytes, as bytes_held() reports them after a drain
    uint32_t thread_index(uint64_t ident, uint32_t tid, const char* native_name = nullptr);

    const spprof_layout& L;
    SampleQueue& queue_;
    DrainSignal& signal_;
    uint64_t memory_limit_;
    SafeReader reader_;
    std::unique_ptr<ProfileData> data_;
    std::unique_ptr<SymbolTable> symbols_;
    std::vector<SampleCell> cells_;
    std::vector<uint32_t> stack_;
    std::unordered_map<uint64_t, std::vector<uint32_t>> stacks_by_hash_;
    std::unordered_map<uint64_t, uint32_t> threads_by_key_;

    std::thread thread_;
    OwnThreadCpu cpu_;
    std::function<void()> watch_;
    // The queue's consumer side and the tables: the collector thread's drain and a cut (on a
    // Python thread, without the GIL) take turns.
    std::mutex mu_;
    uint64_t last_edge_ns_ = 0;

    std::atomic<uint64_t> samples_{0}, dropped_memory_{0}, bytes_held_{0}, unverified_{0}, late_at_edge_{0}, afresh_{0},
        errors_{0};
    uint64_t unverified_before_ = 0;  // of the symbol tables dropped by start_afresh()
};

}  // namespace spprof
