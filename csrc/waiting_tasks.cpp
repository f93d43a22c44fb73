#include "waiting_tasks.h"

#include <algorithm>

#include "bytes.h"

namespace spprof {

namespace {
// Bytes read past a coroutine's frame fields, where its stack top usually lies: a coroutine and
// the object it awaits then cost one read each.
constexpr uint32_t kStackWindow = 256;
constexpr size_t kCursors = kChainSlots;
}  // namespace

WaitingTasks::WaitingTasks(const spprof_layout& layout, SafeReader& reader, AsyncioTasks& tasks,
                           FrameCapture& capture, int max_depth)
    : L(layout), reader_(reader), tasks_(tasks), capture_(capture), max_depth_(max_depth),
      coro_bytes_(std::max({L.ob_type, L.gen_frame_state,
                            L.coro_frame + std::max({L.if_code, L.if_instr, L.if_stackpointer})}) + 8),
      cursors_(kCursors), task_(std::max<uint32_t>(L.task_copy, 8)), coro_(coro_bytes_ + kStackWindow),
      chain_(static_cast<size_t>(max_depth) * 2), coros_(static_cast<size_t>(max_depth)),
      seen_(static_cast<size_t>(max_depth) * 2) {}

void WaitingTasks::begin_thread(size_t i, uint64_t ts_addr, uint64_t t_ns, uint64_t weight, bool quiet) {
    cur_ = nullptr;
    if (!enabled() || i >= empty_.size() || (quiet && empty_[i] == ts_addr)) return;
    Cursor& c = cursors_[thread_slot(ts_addr)];
    if (c.tstate != ts_addr) {
        c = Cursor{};
        c.tstate = ts_addr;
        c.pass_start_ns = t_ns > weight ? t_ns - weight : 0;
    }
    // The running task and the list's head lie close together in the thread state.
    const uint32_t lo = std::min(L.ts_running_task, L.ts_tasks_head);
    const uint32_t hi = std::max(L.ts_running_task + 8, L.ts_tasks_head + 16);
    uint8_t ts[256];
    if (hi - lo > sizeof ts || !reader_.read(ts_addr + lo, ts, hi - lo)) return;
    running_ = load_u64(ts + (L.ts_running_task - lo));
    head_ = ts_addr + L.ts_tasks_head;
    const uint64_t first = load_u64(ts + (L.ts_tasks_head - lo));
    empty_[i] = first == head_ ? ts_addr : 0;
    ++c.ticks;
    cur_ = &c;
    t_ns_ = t_ns;
    // A list read whole at each tick: each task's time is the tick's. One read in turns: the time
    // since its place was last read, which the last pass took (or, in the first, since the start).
    weight_ = c.node == 0 && c.last_ticks <= 1 ? weight : c.last_pass_ns != 0 ? c.last_pass_ns : t_ns - c.pass_start_ns;
    resumed_ = c.node != 0;
    next_ = resumed_ ? c.node : first;
    first_ = first;
}

void WaitingTasks::end_pass(uint64_t t_ns) {
    Cursor& c = *cur_;
    c.last_pass_ns = t_ns - c.pass_start_ns;
    c.last_ticks = c.ticks;
    c.last_count = c.count;
    c.pass_start_ns = t_ns;
    c.ticks = c.count = c.hops = 0;
    c.node = 0;
    cur_ = nullptr;
}

bool WaitingTasks::next(FrameRecord* frames, int& depth, uint64_t& weight) {
    while (cur_ != nullptr) {
        Cursor& c = *cur_;
        if (next_ == head_) {
            end_pass(t_ns_);
            return false;
        }
        if (budget_ <= 0) {
            // Left for the next tick, which starts here; those of this pass not yet met are counted.
            left_out_.fetch_add(c.last_count > c.count ? c.last_count - c.count : 1, std::memory_order_relaxed);
            c.node = next_;
            cur_ = nullptr;
            return false;
        }
        const uint64_t node = next_, task = node - L.task_node;
        bool linked = plausible(node) && ++c.hops <= kTaskListBound && reader_.read(task, task_.data(), L.task_copy);
        uint64_t after = 0;
        if (linked) {
            after = load_u64(task_.data() + L.task_node);
            linked = plausible(after) && plausible(load_u64(task_.data() + L.task_node + 8)) &&
                     tasks_.is_task_type(load_u64(task_.data() + L.ob_type));
        }
        if (!linked) {
            // The task this pass was to go on with finished between the ticks: from the list's
            // first. Anything else is a list that changed under the reads: read again next tick.
            c.node = 0;
            if (resumed_) {
                resumed_ = false;
                c.hops = 0;
                next_ = first_;
                continue;
            }
            reject();
            cur_ = nullptr;
            return false;
        }
        resumed_ = false;
        --budget_;
        ++c.count;
        next_ = after;
        if (task == running_) continue;  // its thread's own sample has it
        depth = sample_task(task, frames);
        if (depth > 0) {
            weight = weight_;
            sampled_.fetch_add(1, std::memory_order_relaxed);
            return true;
        }
    }
    return false;
}

int WaitingTasks::sample_task(uint64_t task, FrameRecord* frames) {
    const uint64_t coro = load_u64(task_.data() + L.task_coro), name = load_u64(task_.data() + L.task_name);
    if (coro == 0) return 0;  // finished: its coroutine is let go before it leaves the list
    if (!plausible(coro) || !plausible(name)) {
        reject();
        return 0;
    }
    const uint64_t mask = ~L.if_code_tag_mask;
    int n = 0;
    for (uint64_t obj = coro; n < std::min(max_depth_, kAwaitChain);) {
        struct iovec l[2] = {{coro_.data(), coro_bytes_}, {coro_.data() + coro_bytes_, kStackWindow}};
        struct iovec r[2] = {{reinterpret_cast<void*>(obj), coro_bytes_},
                             {reinterpret_cast<void*>(obj + coro_bytes_), kStackWindow}};
        const size_t got = reader_.readv_prefix(l, r, 2);
        const uint64_t type = got >= coro_bytes_ ? load_u64(coro_.data() + L.ob_type) : 0;
        // What the innermost coroutine awaits (a future, a task) ends the chain.
        if (type != L.coro_type && (n == 0 || type != L.gen_type)) {
            if (n == 0) reject();
            break;
        }
        const int state = static_cast<int8_t>(coro_[L.gen_frame_state]);
        if (n == 0 && state != L.frame_created && state != L.frame_suspended && state != L.frame_suspended_yield_from)
            return 0;  // it runs (its thread's sample has it) or it has finished
        if (state != L.frame_suspended && state != L.frame_suspended_yield_from) {
            reject();  // an awaited coroutine that is not suspended: the task moved under the reads
            return 0;
        }
        const uint8_t* f = coro_.data() + L.coro_frame;
        const uint64_t instr = load_u64(f + L.if_instr);
        chain_[static_cast<size_t>(n)] = {load_u64(f + L.if_code) & mask, instr, obj + L.coro_frame};
        coros_[static_cast<size_t>(n)] = obj;
        seen_[2 * static_cast<size_t>(n)] = state;
        seen_[2 * static_cast<size_t>(n) + 1] = static_cast<int64_t>(instr);
        ++n;
        if (state != L.frame_suspended_yield_from) break;
        const uint64_t top = load_u64(f + L.if_stackpointer) - 8;
        uint64_t ref = 0;
        if (within(top, 8, obj, obj + got)) ref = load_u64(coro_.data() + (top - obj));
        else if (!reader_.read(top, &ref, sizeof ref)) { reject(); return 0; }
        obj = ref & mask;
        if (!plausible(obj)) break;
    }
    if (n == 0) return 0;
    // Innermost first, as a walk gives them.
    Walked* walked = chain_.data() + max_depth_;
    for (int i = 0; i < n; ++i) walked[i] = chain_[static_cast<size_t>(n - 1 - i)];
    char text[kTaskNameBytes];
    size_t len = 0;
    if (!capture_.resolve(walked, n, frames) || (len = tasks_.copy_name(name, text)) == 0) {
        reject();
        return 0;
    }
    // Read again: each coroutine still suspended where it was, the task still with its coroutine
    // and name. A task that ran meanwhile may have left a mixed copy.
    {
        struct iovec l[2 * kAwaitChain + 2], r[2 * kAwaitChain + 2];
        uint8_t states[kAwaitChain];
        uint64_t instrs[kAwaitChain], again[2];
        const int m = n;
        size_t k = 0;
        for (int i = 0; i < m; ++i) {
            const uint64_t obj = coros_[static_cast<size_t>(i)];
            l[k] = {&states[i], 1};
            r[k++] = {reinterpret_cast<void*>(obj + L.gen_frame_state), 1};
            l[k] = {&instrs[i], 8};
            r[k++] = {reinterpret_cast<void*>(obj + L.coro_frame + L.if_instr), 8};
        }
        l[k] = {&again[0], 8};
        r[k++] = {reinterpret_cast<void*>(task + L.task_coro), 8};
        l[k] = {&again[1], 8};
        r[k++] = {reinterpret_cast<void*>(task + L.task_name), 8};
        bool same = reader_.readv(l, r, k) && again[0] == coro && again[1] == name;
        for (int i = 0; same && i < m; ++i)
            same = static_cast<int8_t>(states[i]) == seen_[2 * static_cast<size_t>(i)] &&
                   static_cast<int64_t>(instrs[i]) == seen_[2 * static_cast<size_t>(i) + 1];
        if (!same) {
            reject();
            return 0;
        }
    }
    const int depth = tasks_.insert(frames, n, n - 1, task, text, len);
    return tasks_.name_awaiting(task, frames, depth, depth - 1);
}

}  // namespace spprof
