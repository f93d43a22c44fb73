#include "collector.h"

#include <algorithm>
#include <pthread.h>

#include <chrono>
#include <cstring>

#include "asyncio_tasks.h"
#include "bytes.h"
#include "quiet_thread.h"

namespace spprof {

namespace {
// A wake-up of a sleeping thread costs tens of microseconds of CPU on a virtual machine, so the
// collector sleeps long unless the sampler asks for it, and then drains at most this often.
constexpr auto kMinDrainPeriod = std::chrono::milliseconds(10);
constexpr auto kIdleDrainPeriod = std::chrono::milliseconds(250);

// A thread's name is any bytes the program set, cut at 15: what is not printable ASCII becomes
// '?', so that no half of a UTF-8 character reaches a string the formats must decode.
void sanitize_thread_name(char* name) {
    for (char* c = name; *c != '\0'; ++c)
        if (static_cast<unsigned char>(*c) < 0x20 || static_cast<unsigned char>(*c) >= 0x7f) *c = '?';
}
}

Collector::Collector(const spprof_layout& layout, SampleQueue& queue, DrainSignal& signal, int max_depth,
                     uint64_t memory_limit)
    : L(layout), queue_(queue), signal_(signal), memory_limit_(memory_limit),
      data_(new ProfileData()),
      cells_(static_cast<size_t>(max_depth) + 1 + kTaskCells) {
    symbols_.reset(new SymbolTable(layout, reader_, *data_));
    stack_.reserve(static_cast<size_t>(max_depth) + 1);
}

Collector::~Collector() {
    if (thread_.joinable()) finish();
}

bool Collector::open(const std::string& forced_reader, std::string& error) {
    return reader_.open(forced_reader, error);
}

bool Collector::start(const std::string& forced_reader, std::string& error) {
    if (!open(forced_reader, error)) return false;
    try {
        thread_ = start_quiet_thread([this] { run(); });
    } catch (const std::exception& e) {
        error = std::string("cannot start the collector thread: ") + e.what();
        return false;
    }
    return true;
}

void Collector::run() {
    pthread_setname_np(pthread_self(), "spprof-collect");
    cpu_.begin();
    try {
        for (;;) {
            signal_.take();
            drain();
            if (watch_) watch_();
            const auto drained_at = std::chrono::steady_clock::now();
            if (signal_.wait_until(drained_at + kIdleDrainPeriod, true)) break;
            if (signal_.wait_until(drained_at + kMinDrainPeriod, false)) break;  // asked early: not yet
        }
    } catch (...) {  // not expected; the queue then fills and the sampler drops and counts
        errors_.fetch_add(1, std::memory_order_relaxed);
    }
    cpu_.end();
}

std::unique_ptr<ProfileData> Collector::finish() {
    signal_.stop();
    if (thread_.joinable()) thread_.join();
    try {
        drain();
    } catch (...) {
        errors_.fetch_add(1, std::memory_order_relaxed);
    }
    std::lock_guard<std::mutex> lock(mu_);  // a cut on another thread may be under way
    return std::move(data_);
}

void Collector::drain() {
    std::lock_guard<std::mutex> lock(mu_);
    drain_locked();
}

void Collector::drain_locked() {
    if (!data_) return;  // finished
    std::string error;
    (void)reader_.revalidate(error);  // when it fails, frames are unverified: never misnamed
    while (queue_.pop(&cells_[0], 1) == 1) {
        const SampleHeader h = cells_[0].header;
        size_t depth = h.depth;
        if (depth + 1 > cells_.size()) depth = cells_.size() - 1;  // never: the sampler obeys max_depth
        if (queue_.pop(&cells_[1], depth) != depth) break;        // never: pushed as one
        ingest(h, &cells_[1].frame);
    }
    bytes_held_.store(held_now(), std::memory_order_relaxed);
    unverified_.store(unverified_before_ + symbols_->unverified(), std::memory_order_relaxed);
}

std::unique_ptr<ProfileData> Collector::cut(uint64_t& edge_ns) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!data_) return nullptr;
    drain_locked();
    ProfileData& d = *data_;
    const size_t sample_bytes = d.samples.capacity() * sizeof(SampleEntry);
    const bool afresh = held_now() - sample_bytes > memory_limit_ / 2;
    if (afresh) {
        for (const SampleEntry& s : d.samples) edge_ns = std::max(edge_ns, s.t_ns);
    }
    // The window is built whole before anything of ours changes: a bad_alloc leaves the tables intact.
    constexpr uint32_t kNone = UINT32_MAX;
    std::unique_ptr<ProfileData> w(new ProfileData());
    std::vector<uint32_t> stack_map(d.stack_count(), kNone), frame_map(d.frames.size(), kNone),
        symbol_map(d.symbols.size(), kNone), thread_map(d.threads.size(), kNone);
    uint64_t late = 0;
    for (const SampleEntry& s : d.samples) {
        if (s.t_ns > edge_ns) continue;
        if (s.t_ns <= last_edge_ns_) ++late;
        SampleEntry o = s;
        uint32_t& t = thread_map[s.thread];
        if (t == kNone) {
            t = static_cast<uint32_t>(w->threads.size());
            w->threads.push_back(d.threads[s.thread]);
        }
        o.thread = t;
        uint32_t& st = stack_map[s.stack];
        if (st == kNone) {
            for (uint32_t k = d.stack_offsets[s.stack]; k < d.stack_offsets[s.stack + 1]; ++k) {
                const uint32_t f = d.stack_frames[k];
                uint32_t& nf = frame_map[f];
                if (nf == kNone) {
                    const FrameEntry& fe = d.frames[f];
                    uint32_t& sym = symbol_map[fe.symbol];
                    if (sym == kNone) {
                        sym = static_cast<uint32_t>(w->symbols.size());
                        w->symbols.push_back(d.symbols[fe.symbol]);
                    }
                    nf = static_cast<uint32_t>(w->frames.size());
                    w->frames.push_back({sym, fe.line});
                }
                w->stack_frames.push_back(nf);
            }
            st = static_cast<uint32_t>(w->stack_count());
            w->stack_offsets.push_back(static_cast<uint32_t>(w->stack_frames.size()));
            w->stack_tasks.push_back(d.stack_tasks[s.stack]);
        }
        o.stack = st;
        w->samples.push_back(o);
    }
    // Then, without allocating: the later samples move to the front for the next window.
    size_t kept = 0;
    for (const SampleEntry& s : d.samples) {
        if (s.t_ns > edge_ns) d.samples[kept++] = s;
    }
    d.samples.resize(kept);
    last_edge_ns_ = edge_ns;
    late_at_edge_.fetch_add(late, std::memory_order_relaxed);
    if (afresh) {
        try {
            start_afresh();
        } catch (const std::bad_alloc&) {
            // the old tables stay; the next cut tries again
        }
    }
    bytes_held_.store(held_now(), std::memory_order_relaxed);
    return w;
}

// Code, stacks and threads that come and go would otherwise fill the bound for good. Only called
// with no sample left in the tables.
void Collector::start_afresh() {
    std::unique_ptr<ProfileData> fresh(new ProfileData());
    std::unique_ptr<SymbolTable> symbols(new SymbolTable(L, reader_, *fresh));
    std::unordered_map<uint64_t, std::vector<uint32_t>>().swap(stacks_by_hash_);
    std::unordered_map<uint64_t, uint32_t>().swap(threads_by_key_);
    unverified_before_ += symbols_->unverified();
    data_ = std::move(fresh);
    symbols_ = std::move(symbols);
    afresh_.fetch_add(1, std::memory_order_relaxed);
}

// A native thread (ident 0) is one track per name and tid: a tid taken by a new thread of
// another name, or a thread that renamed itself, starts a track of its own.
uint32_t Collector::thread_index(uint64_t ident, uint32_t tid, const char* native_name) {
    uint64_t key = mix64(ident, tid);
    if (native_name != nullptr)
        for (const char* c = native_name; *c != '\0'; ++c) key = mix64(key, static_cast<unsigned char>(*c));
    auto it = threads_by_key_.find(key);
    if (it != threads_by_key_.end()) return it->second;
    uint32_t idx = static_cast<uint32_t>(data_->threads.size());
    data_->threads.reserve(idx + 1);  // out of memory here or below leaves both tables as they were
    threads_by_key_.emplace(key, idx);
    data_->threads.push_back({ident, tid, native_name != nullptr ? native_name : ""});
    return idx;
}

uint32_t Collector::intern_stack(uint64_t task) {
    uint64_t h = mix64(0x5354, task);
    for (uint32_t f : stack_) h = mix64(h, f);
    auto& bucket = stacks_by_hash_[h];
    for (uint32_t id : bucket) {
        uint32_t a = data_->stack_offsets[id], b = data_->stack_offsets[id + 1];
        if (b - a == stack_.size() && data_->stack_tasks[id] == task &&
            std::equal(stack_.begin(), stack_.end(), data_->stack_frames.begin() + a))
            return id;
    }
    uint32_t id = static_cast<uint32_t>(data_->stack_count());
    // Every allocation before the first change: out of memory leaves the tables consistent.
    data_->stack_offsets.reserve(data_->stack_offsets.size() + 1);
    data_->stack_tasks.reserve(data_->stack_tasks.size() + 1);
    bucket.reserve(bucket.size() + 1);
    data_->stack_frames.insert(data_->stack_frames.end(), stack_.begin(), stack_.end());
    data_->stack_offsets.push_back(static_cast<uint32_t>(data_->stack_frames.size()));
    data_->stack_tasks.push_back(task);
    bucket.push_back(id);
    return id;
}

size_t Collector::held_now() const {
    return data_->bytes_held() + symbols_->bytes_held() + stacks_by_hash_.size() * 64;
}

// The sample table is the part that grows without end; doubling it past the bound would hold up
// to twice the limit, so it grows only into the room left under the bound, less a sixteenth kept
// for the stack and symbol tables.
bool Collector::grow_samples() {
    const size_t held = held_now();
    const size_t bound = memory_limit_ - memory_limit_ / 16;
    if (held >= bound) return false;
    const size_t room = (bound - held) / sizeof(SampleEntry);
    const size_t step = std::min(std::max<size_t>(data_->samples.capacity(), 4096), room);
    if (step == 0) return false;
    data_->samples.reserve(data_->samples.capacity() + step);
    return true;
}

// Out of memory (an address-space limit reached before memory_limit_mb) drops the sample and
// counts it like the bound does; every table is left consistent (see intern_stack()).
void Collector::ingest(const SampleHeader& h, const FrameRecord* frames) {
    try {
        ingest_or_throw(h, frames);
    } catch (const std::bad_alloc&) {
        dropped_memory_.fetch_add(1, std::memory_order_relaxed);
    }
}

void Collector::ingest_or_throw(const SampleHeader& h, const FrameRecord* frames) {
    if (bytes_held_.load(std::memory_order_relaxed) > memory_limit_) {
        dropped_memory_.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    stack_.clear();
    char native_name[17] = {0};
    if (h.flags & kSampleNative) {
        if (h.depth != 1) return;  // never: the sampler pushes a name cell
        std::memcpy(native_name, frames, 16);
        sanitize_thread_name(native_name);
        stack_.push_back(symbols_->native_thread_frame(native_name));
    }
    if (h.flags & kSampleTruncated) stack_.push_back(symbols_->truncated_frame());
    if (h.flags & kSampleUnknown) stack_.push_back(symbols_->unknown_frame());
    uint64_t task = 0;  // the innermost task's address: the records come outermost first
    for (size_t i = (h.flags & kSampleNative) ? 0 : h.depth; i-- > 0;) {
        if (frames[i].instr_bytes == kTaskRecord) {  // the task that runs the frames inside it
            const size_t len = static_cast<size_t>(frames[i].fingerprint);
            const size_t cells = task_name_cells(len);
            if (len == 0 || cells > static_cast<size_t>(kTaskNameCells) || cells > i) continue;  // never: the sampler wrote it
            char name[kTaskNameBytes];
            for (size_t j = 0; j < cells; ++j) std::memcpy(name + j * sizeof(FrameRecord), &frames[i - 1 - j], sizeof(FrameRecord));
            stack_.push_back(symbols_->task_frame(std::string(name, len)));
            task = frames[i].code;
            i -= cells;
            continue;
        }
        if (frames[i].instr_bytes == kUnknownRecord) {
            stack_.push_back(symbols_->unknown_frame());
            continue;
        }
        uint32_t f = symbols_->frame_for(frames[i].code, frames[i].fingerprint, frames[i].instr_bytes);
        if (f != SymbolTable::kHidden) stack_.push_back(f);
    }
    if (data_->samples.size() == data_->samples.capacity() && !grow_samples()) {
        dropped_memory_.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    SampleEntry s;
    s.t_ns = h.t_ns;
    s.weight_ns = h.weight_ns;
    s.thread = thread_index(h.thread_ident, h.native_tid, (h.flags & kSampleNative) ? native_name : nullptr);
    s.stack = intern_stack(task);
    data_->samples.push_back(s);
    samples_.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace spprof
