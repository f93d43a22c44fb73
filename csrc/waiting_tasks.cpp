#include "waiting_tasks.h"

#include <algorithm>
#include <cstring>

#include "bytes.h"

namespace spprof {

namespace {
// Bytes read past a coroutine's frame fields, where its stack top usually lies: a coroutine and
// the object it awaits then cost one read each.
constexpr uint32_t kStackWindow = 256;
constexpr size_t kCursors = kChainSlots;
constexpr size_t kMaxIov = 960;     // ranges per batched read, under the kernel's IOV_MAX
constexpr size_t kResolved = 16;    // chains resolved per tick that are kept, direct-mapped
constexpr size_t kForecasts = 8;    // 3.14: threads whose last pass's nodes are kept, direct-mapped
constexpr uint32_t kForecastNodes = 4096;  // of each pass: the nodes after are read one by one
}  // namespace

WaitingTasks::WaitingTasks(const spprof_layout& layout, SafeReader& reader, AsyncioTasks& tasks,
                           FrameCapture& capture, int max_depth, int stride, int per_read)
    : L(layout), reader_(reader), tasks_(tasks), capture_(capture), sets_(layout, reader),
      max_depth_(std::min(max_depth, kAwaitChain)),
      coro_bytes_(std::max({L.ob_type, L.gen_frame_state,
                            L.coro_frame + std::max({L.if_code, L.if_instr, L.if_stackpointer, L.if_stacktop})}) + 8),
      objects_(L.frame_model == SPPROF_FRAMES_OBJECTS),
      window_(coro_bytes_ + (objects_ ? 0 : kStackWindow)), frame_window_(objects_ ? L.fo_size + kStackWindow : 0),
      state_at_(objects_ ? L.fo_state : L.gen_frame_state), instr_at_(objects_ ? L.fo_lasti : L.coro_frame + L.if_instr),
      cursors_(kCursors), batch_(kTaskBatch),
      tasks_copy_(kTaskBatch * std::max<uint32_t>(L.task_copy, 8)), windows_(kTaskBatch * window_),
      frame_windows_(kTaskBatch * frame_window_),
      chain_(kTaskBatch * kAwaitChain), coros_(kTaskBatch * kAwaitChain), seen_(2 * kTaskBatch * kAwaitChain),
      names_(kTaskBatch * kTaskNameBytes), name_copies_(kTaskBatch * kTaskNameCopy), names_again_(kTaskBatch * kTaskNameCopy), local_(kMaxIov + 2), remote_(kMaxIov + 2), resolved_(kResolved),
      re_states_(kTaskBatch * kAwaitChain), re_words_(kTaskBatch * (kAwaitChain + 3)), walked_(kAwaitChain),
      forecasts_(L.task_node != 0 ? kForecasts : 0), ahead_copies_(kTaskBatch * std::max<uint32_t>(L.task_copy, 8)),
      stride_(std::max(stride, 1)), per_read_(std::max(per_read, 1)) {
    for (Forecast& f : forecasts_) f.nodes.resize(kForecastNodes);
}

void WaitingTasks::begin_thread(size_t i, uint64_t ts_addr, uint64_t t_ns, bool quiet) {
    cur_ = nullptr;
    if (!due_) {
        // Kept only for the same thread, still there and quiet: another may have moved to its
        // place (threads are listed from the newest), and one that ran may have made tasks.
        if (i < empty_.size() && (!quiet || empty_[i] != ts_addr)) empty_[i] = 0;
        return;
    }
    if (!enabled() || i >= empty_.size()) return;
    Cursor& c = cursors_[thread_slot(ts_addr)];
    if (quiet && empty_[i] == ts_addr) {
        // Its list is as empty as when read: a pass that ended now, so that the first pass over
        // tasks it makes later is not timed from before it was idle.
        if (c.tstate == ts_addr && c.node == 0) c.pass_start_ns = t_ns;
        return;
    }
    const uint64_t weight = since_read_ns_;
    if (c.tstate != ts_addr) {
        c = Cursor{};
        c.tstate = ts_addr;
        c.pass_start_ns = t_ns > weight ? t_ns - weight : 0;
    }
    uint64_t first = 0;
    if (L.task_node == 0) {
        // 3.9-3.13: the set, where the pass left it, if its table is the one the pass read.
        loop_ = sets_.running_loop(ts_addr);
        empty_[i] = loop_ == 0 ? ts_addr : 0;
        if (loop_ == 0) return;
        if (!sets_.begin(c.node != 0 ? c.node - 1 : 0, c.node != 0 ? c.table : 0)) {
            if (c.node == 0 || !sets_.begin(0, 0)) return;
            c.node = 0;
        }
        c.table = sets_.table();
        running_ = 0;
    } else {
        // The running task and the list's head lie close together in the thread state.
        const uint32_t lo = std::min(L.ts_running_task, L.ts_tasks_head);
        const uint32_t hi = std::max(L.ts_running_task + 8, L.ts_tasks_head + 16);
        uint8_t ts[256];
        if (hi - lo > sizeof ts || !reader_.read(ts_addr + lo, ts, hi - lo)) return;
        running_ = load_u64(ts + (L.ts_running_task - lo));
        head_ = ts_addr + L.ts_tasks_head;
        first = load_u64(ts + (L.ts_tasks_head - lo));
        empty_[i] = first == head_ ? ts_addr : 0;
        fc_ = &forecasts_[thread_slot(ts_addr) % kForecasts];
        if (fc_->tstate != ts_addr) {
            fc_->tstate = ts_addr;
            fc_->n = 0;
        }
    }
    ++c.ticks;
    cur_ = &c;
    t_ns_ = t_ns;
    // A list read whole at each tick that reads tasks: each task's time is the time since the
    // last such tick. One read in turns: the time
    // since its place was last read, which the last pass took (or, in the first, since the start).
    weight_ = c.node == 0 && c.last_ticks <= 1 ? weight : c.last_pass_ns != 0 ? c.last_pass_ns : t_ns - c.pass_start_ns;
    resumed_ = c.node != 0;
    batch_n_ = emit_ = 0;
    next_ = L.task_node == 0 ? (resumed_ ? c.node - 1 : 0) : resumed_ ? c.node : first;
    first_ = first;
}

// The budget is spent: the next tick starts at `node`; those of this pass not yet met are counted.
bool WaitingTasks::leave_for_next_tick(Cursor& c, uint64_t node) {
    left_out_.fetch_add(c.last_count > c.count ? c.last_count - c.count : 1, std::memory_order_relaxed);
    c.node = node;
    cur_ = nullptr;
    return false;
}

void WaitingTasks::end_pass(uint64_t t_ns) {
    Cursor& c = *cur_;
    if (L.task_node != 0) fc_->n = std::min(c.hops, kForecastNodes);
    c.last_pass_ns = t_ns - c.pass_start_ns;
    c.last_ticks = c.ticks;
    c.last_count = c.count;
    c.pass_start_ns = t_ns;
    c.ticks = c.count = c.hops = 0;
    c.node = 0;
    cur_ = nullptr;
}

// 3.14: the thread's list's next task, copied into `copy`. False for a node to pass over, or
// (cur_ then null) when the thread is done for this tick.
bool WaitingTasks::list_task(Cursor& c, uint64_t& task, uint8_t* copy) {
    if (next_ == head_) {
        end_pass(t_ns_);
        return false;
    }
    if (budget_ <= 0) return leave_for_next_tick(c, next_);
    const uint64_t node = next_;
    const uint32_t at = c.hops;  // its place in the pass
    task = node - L.task_node;
    bool linked = plausible(node) && ++c.hops <= kTaskListBound;
    if (linked) {
        const size_t j = at - ahead_at_;
        if (at >= ahead_at_ && j < ahead_n_ && ahead_nodes_[j] == node)
            std::copy(ahead_copies_.data() + j * L.task_copy, ahead_copies_.data() + (j + 1) * L.task_copy, copy);
        else
            linked = reader_.read(task, copy, L.task_copy);
    }
    uint64_t after = 0;
    if (linked) {
        after = load_u64(copy + L.task_node);
        linked = plausible(after) && plausible(load_u64(copy + L.task_node + 8)) &&
                 tasks_.is_task_type(load_u64(copy + L.ob_type));
    }
    if (!linked) {
        // The task this pass was to go on with finished between the ticks: from the list's
        // first. Anything else is a list that changed under the reads: read again next tick.
        c.node = 0;
        if (resumed_) {
            resumed_ = false;
            c.hops = 0;
            next_ = first_;
            return false;
        }
        reject();
        c.hops = 0;
        cur_ = nullptr;
        return false;
    }
    resumed_ = false;
    --budget_;
    ++c.count;
    next_ = after;
    if (at < kForecastNodes) fc_->nodes[at] = node;
    return true;
}

// 3.14: the list is read a node at a time (each node's link is inside it), but it seldom changes
// between passes: the nodes the last pass met at the places this tick goes on to are read ahead
// in one read, and each copy is used only when the link followed leads to that very node.
void WaitingTasks::read_ahead() {
    ahead_n_ = 0;
    const uint32_t at = cur_->hops;
    ahead_at_ = at;
    if (at >= fc_->n || fc_->nodes[at] != next_) return;
    const size_t k = std::min<size_t>({fc_->n - at, kTaskBatch, static_cast<size_t>(std::max(budget_, 0))});
    for (size_t j = 0; j < k; ++j) {
        ahead_nodes_[j] = fc_->nodes[at + j];
        local_[j] = {ahead_copies_.data() + j * L.task_copy, L.task_copy};
        remote_[j] = {reinterpret_cast<void*>(ahead_nodes_[j] - L.task_node), L.task_copy};
    }
    if (k > 0 && reader_.readv(local_.data(), remote_.data(), k)) ahead_n_ = k;
}

// A task whose copy was read, unless it needs no sample.
void WaitingTasks::take(uint64_t task, const uint8_t* copy) {
    if (task == running_) return;  // its thread's own sample has it
    const uint64_t coro = load_u64(copy + L.task_coro), name = load_u64(copy + L.task_name);
    if (coro == 0) return;  // finished: its coroutine is let go before it leaves the list
    if (!plausible(coro) || !plausible(name)) {
        reject();
        return;
    }
    const uint64_t by = L.task_awaited_by != 0 ? load_u64(copy + L.task_awaited_by) : 0;
    const uint64_t cb0 = L.fut_callback0 != 0 ? load_u64(copy + L.fut_callback0) : 0;
    const uint64_t waiter = L.task_fut_waiter != 0 ? load_u64(copy + L.task_fut_waiter) : 0;
    batch_[batch_n_++] = {task, coro, name, coro, by, 0, true, false, 0, cb0, waiter};
}

// The next tasks of the thread's list, up to a batch, whose reads are then made together.
bool WaitingTasks::fill_batch() {
    batch_n_ = emit_ = 0;
    if (L.task_node == 0) return fill_batch_from_set();
    if (cur_ != nullptr) read_ahead();
    while (cur_ != nullptr && batch_n_ < kTaskBatch) {
        uint64_t task = 0;
        uint8_t* copy = tasks_copy_.data() + batch_n_ * L.task_copy;
        if (list_task(*cur_, task, copy)) take(task, copy);
    }
    return batch_n_ > 0;
}

// 3.9-3.13: the set's next entries, up to a batch, and the copies of their objects in one read;
// those that are Tasks of the thread's loop are taken. The pass's end (or the budget's) is
// marked once they are counted, as the tasks it met.
bool WaitingTasks::fill_batch_from_set() {
    Cursor& c = *cur_;
    uint64_t found[kTaskBatch];
    size_t n = 0;
    bool ended = false, spent = false;
    while (n < kTaskBatch) {
        if (budget_ <= 0) {
            spent = true;
            break;
        }
        uint64_t task = 0, after = 0;
        if (!sets_.next(task, after)) {
            ended = !sets_.torn();
            if (!ended) {
                // The table was replaced (the set grew or shrank): the pass goes on from its first entry.
                c.node = 0;
                c.table = 0;
                cur_ = nullptr;
            }
            break;
        }
        resumed_ = false;
        next_ = after;
        --budget_;
        if (++c.hops > kTaskListBound) {  // the next tick starts the pass over
            c.node = 0;
            c.hops = 0;
            cur_ = nullptr;
            break;
        }
        found[n++] = task;
    }
    for (size_t k = 0; k < n; ++k) {
        local_[k] = {tasks_copy_.data() + k * L.task_copy, L.task_copy};
        remote_[k] = {reinterpret_cast<void*>(found[k]), L.task_copy};
    }
    const bool whole = n > 0 && reader_.readv(local_.data(), remote_.data(), n);
    for (size_t k = 0; k < n; ++k) {
        uint8_t* copy = tasks_copy_.data() + k * L.task_copy;
        if (!whole && !reader_.read(found[k], copy, L.task_copy)) {
            reject();
            continue;
        }
        // None (a task gone), or a task asyncio's Task did not make; then another loop's.
        if (!tasks_.is_task_type(load_u64(copy + L.ob_type)) || load_u64(copy + L.task_loop) != loop_) continue;
        ++c.count;
        take(found[k], copy);
    }
    if (ended) end_pass(t_ns_);
    else if (spent) leave_for_next_tick(c, next_ + 1);
    return batch_n_ > 0;
}

// One coroutine (or the object the last one awaits) of each task in `which`, in one read when
// every one can be read whole; `with_names`: their names' objects in that read too.
void WaitingTasks::read_level(size_t* which, size_t m, bool with_names) {
    size_t got[kTaskBatch] = {};
    size_t n = m;
    for (size_t k = 0; k < m; ++k) {
        local_[k] = {windows_.data() + which[k] * window_, window_};
        remote_[k] = {reinterpret_cast<void*>(batch_[which[k]].obj), window_};
        if (with_names) {
            local_[n] = {name_copies_.data() + which[k] * kTaskNameCopy, kTaskNameCopy};
            remote_[n++] = {reinterpret_cast<void*>(batch_[which[k]].name), kTaskNameCopy};
        }
    }
    const bool whole = reader_.readv(local_.data(), remote_.data(), n);
    if (with_names) names_copied_ = whole;
    for (size_t k = 0; k < m; ++k) {
        if (whole) {
            got[k] = window_;
            continue;
        }
        got[k] = read_window(batch_[which[k]].obj, windows_.data() + which[k] * window_, coro_bytes_, window_);
    }
    if (objects_) read_frame_objects(which, m, got);
    const uint64_t mask = ~L.if_code_tag_mask;
    for (size_t k = 0; k < m; ++k) {
        const size_t b = which[k];
        Pending& p = batch_[b];
        const uint8_t* w = windows_.data() + b * window_;
        const uint64_t type = got[k] >= coro_bytes_ ? load_u64(w + L.ob_type) : 0;
        p.open = false;
        // What the innermost coroutine awaits (a future, a task) ends the chain.
        if (type != L.coro_type && (p.n == 0 || type != L.gen_type)) {
            p.ok = p.n > 0;
            if (p.n == 0) reject();
            continue;
        }
        Level v;
        if (!(objects_ ? frame_object_level(b, w, frame_got_[k], type == L.gen_type, v) : interpreter_level(b, w, got[k], v))) {
            p.ok = false;
            reject();
            continue;
        }
        if (p.n == 0 && !v.suspended && !v.created) continue;  // it runs, or it has finished
        if (p.n == 0) tasks_.saw_suspended(v.frame, p.task);
        if (p.n > 0 && !v.suspended) {
            p.ok = false;
            reject();  // an awaited coroutine that is not suspended: the task moved under the reads
            continue;
        }
        const size_t at = b * kAwaitChain + static_cast<size_t>(p.n);
        chain(b)[p.n] = {v.code & mask, v.instr, v.frame};
        coros_[at] = v.recheck;
        seen_[2 * at] = v.state;
        seen_[2 * at + 1] = static_cast<int64_t>(v.instr_word);
        ++p.n;
        p.ok = true;
        if (!v.awaits) continue;
        uint64_t ref = 0;
        if (within(v.top, 8, v.copy_at, v.copy_at + v.copy_len)) {
            ref = load_u64(v.copy + (v.top - v.copy_at));
        } else if (!reader_.read(v.top, &ref, sizeof ref)) {
            p.ok = false;
            reject();
            continue;
        }
        p.obj = ref & mask;
        p.open = plausible(p.obj) && p.n < max_depth_;
    }
}

// 3.11+: the frame lies inside the coroutine, its stack top usually in the window read with it.
bool WaitingTasks::interpreter_level(size_t b, const uint8_t* w, size_t got, Level& v) {
    const uint64_t obj = batch_[b].obj;
    const int state = static_cast<int8_t>(w[L.gen_frame_state]);
    const uint8_t* f = w + L.coro_frame;
    v = Level{};
    v.state = state;
    v.suspended = state == L.frame_suspended || state == L.frame_suspended_yield_from;
    v.created = state == L.frame_created;
    v.code = load_u64(f + L.if_code);
    v.instr = v.instr_word = load_u64(f + L.if_instr);
    v.frame = obj + L.coro_frame;
    v.recheck = obj;
    v.copy = w;
    v.copy_at = obj;
    v.copy_len = got;
    if (!v.suspended || state != L.frame_suspended_yield_from || (L.resume_ops[0] != 0 && !resumes_from_await(v.instr)))
        return true;
    v.awaits = true;
    v.top = load_u64(f + L.if_stackpointer) - 8;
    if (L.if_stacktop != 0) {
        // 3.11-3.13: an index into the frame's locals and stack, inside the coroutine.
        const int32_t at = load_i32(f + L.if_stacktop);
        if (at <= 0 || at > (1 << 20)) return false;
        v.top = obj + L.coro_frame + L.if_localsplus + 8 * static_cast<uint64_t>(at - 1);
    }
    return true;
}

// 3.9/3.10: each coroutine's gi_frame, a frame object of its own, read in one read for the level
// (frame_got_: the bytes of each that were read).
void WaitingTasks::read_frame_objects(const size_t* which, size_t m, const size_t* got) {
    size_t n = 0, idx[kTaskBatch];
    for (size_t k = 0; k < m; ++k) {
        frame_got_[k] = 0;
        const uint8_t* w = windows_.data() + which[k] * window_;
        const uint64_t type = got[k] >= coro_bytes_ ? load_u64(w + L.ob_type) : 0;
        const uint64_t f = type == L.coro_type || type == L.gen_type ? load_u64(w + L.coro_frame) : 0;
        if (!plausible(f)) continue;  // 0: it has finished (or what ends the chain: no frame)
        idx[n] = k;
        local_[n] = {frame_windows_.data() + which[k] * frame_window_, frame_window_};
        remote_[n++] = {reinterpret_cast<void*>(f), frame_window_};
    }
    if (n == 0) return;
    const bool whole = reader_.readv(local_.data(), remote_.data(), n);
    for (size_t j = 0; j < n; ++j) {
        if (whole) {
            frame_got_[idx[j]] = frame_window_;
            continue;
        }
        frame_got_[idx[j]] = read_window(reinterpret_cast<uint64_t>(remote_[j].iov_base),
                                         static_cast<uint8_t*>(local_[j].iov_base), L.fo_size, frame_window_);
    }
}

// When a batched read failed (some object lies near the end of its memory): one object's window
// of `total` bytes read alone, as far as it goes past its first `head`. The bytes read.
size_t WaitingTasks::read_window(uint64_t addr, uint8_t* out, size_t head, size_t total) {
    struct iovec l[2] = {{out, head}, {out + head, total - head}};
    struct iovec r[2] = {{reinterpret_cast<void*>(addr), head}, {reinterpret_cast<void*>(addr + head), total - head}};
    return reader_.readv_prefix(l, r, total > head ? 2 : 1);
}

// 3.9/3.10: a coroutine's frame object. It awaits when suspended with YIELD_FROM after its last
// instruction (a coroutine suspends nowhere else; a generator may be at a plain `yield`), the
// awaited object on its value stack's top. False for a copy that cannot be a suspended frame.
bool WaitingTasks::frame_object_level(size_t b, const uint8_t* w, size_t got, bool generator, Level& v) {
    v = Level{};
    const uint64_t f = load_u64(w + L.coro_frame);
    if (f == 0) return true;  // finished: neither suspended nor created
    const uint8_t* fb = frame_windows_.data() + b * frame_window_;
    // A frame is its generator's until that finishes: a frame freed and reused meanwhile is not.
    if (got < L.fo_size || load_u64(fb + L.ob_type) != L.frame_type || load_u64(fb + L.fo_gen) != batch_[b].obj)
        return false;
    const int state = static_cast<int8_t>(fb[L.fo_state]);
    const int32_t lasti = load_i32(fb + L.fo_lasti);
    if (lasti < -1) return false;
    uint64_t top = 0;
    if (L.fo_stacktop != 0) {
        // 3.9: no state but f_executing; a frame that is not executing keeps its stack top
        // until it has finished.
        const uint64_t stacktop = load_u64(fb + L.fo_stacktop);
        v.created = state != L.fo_running && stacktop != 0 && lasti == -1;
        v.suspended = state != L.fo_running && stacktop != 0 && lasti >= 0;
        top = stacktop - 8;
    } else {
        v.created = state == L.frame_created;
        v.suspended = state == L.frame_suspended && lasti >= 0;
        const int32_t depth = load_i32(fb + L.fo_stackdepth);
        top = load_u64(fb + L.fo_valuestack) + 8 * static_cast<uint64_t>(static_cast<int64_t>(depth) - 1);
    }
    v.state = state;
    v.code = load_u64(fb + L.fo_code);
    v.instr = lasti < 0 ? ~0ull : static_cast<uint64_t>(lasti) * static_cast<uint64_t>(L.fo_lasti_scale);
    v.instr_word = static_cast<uint64_t>(static_cast<int64_t>(lasti));
    v.frame = f;
    v.recheck = f;
    v.copy = fb;
    v.copy_at = f;
    v.copy_len = got;
    // A generator at a plain `yield` (asyncio.sleep(0)'s) awaits nothing, its stack maybe empty.
    v.awaits = v.suspended && (!generator || yields_from(v.code, v.instr));
    if (!v.awaits) return true;
    // The stack lies at the end of the frame object, after its fixed fields.
    if (top < f + L.fo_size - 8 || top - f > (1u << 23) || (top - f) % 8 != 0) return false;
    v.top = top;
    return true;
}

// 3.9/3.10: whether the instruction after the one at byte `instr` of `code` is YIELD_FROM.
bool WaitingTasks::yields_from(uint64_t code, uint64_t instr) {
    uint64_t bytecode = 0;
    uint8_t op = 0;
    const uint64_t at = instr + 2;
    if (!reader_.read(code + L.co_code, &bytecode, sizeof bytecode) || !plausible(bytecode)) return false;
    uint8_t head[64];
    if (L.bytes_sval > sizeof head || !reader_.read(bytecode, head, L.bytes_sval) ||
        load_u64(head + L.ob_type) != L.bytes_type || at >= static_cast<uint64_t>(load_i64(head + L.ob_size)))
        return false;
    return reader_.read(bytecode + L.bytes_sval + at, &op, 1) && op == L.yield_from_op;
}

// 3.11/3.12: the instruction after the frame's last one (a YIELD_VALUE) is the RESUME it comes
// back at; its argument says after what: 2 and up, a `yield from` or an await.
// Most tasks wait at a few awaits: each instruction's answer is kept for the tick.
bool WaitingTasks::resumes_from_await(uint64_t instr) {
    if (!plausible(instr & ~7ull)) return false;
    Resumes& r = resumes_[(instr >> 1) % kResumes];
    if (r.instr == instr) return r.awaits;
    uint8_t unit[2];
    if (!reader_.read(instr + 2, unit, sizeof unit)) return false;
    r.instr = instr;
    r.awaits = (unit[0] == L.resume_ops[0] || unit[0] == L.resume_ops[1]) && unit[1] >= 2;
    return r.awaits;
}

void WaitingTasks::read_chains() {
    size_t which[kTaskBatch];
    names_copied_ = false;
    for (bool first = true;; first = false) {
        size_t m = 0;
        for (size_t b = 0; b < batch_n_; ++b)
            if (batch_[b].open) which[m++] = b;
        if (m == 0) break;
        read_level(which, m, first);  // the names with the tasks' own coroutines
    }
    // The names' objects, unless read with the first level: in one read, when each can be read
    // that far; else each on its own.
    size_t k = 0;
    for (size_t b = 0; !names_copied_ && b < batch_n_; ++b) {
        if (!batch_[b].ok) continue;
        local_[k] = {name_copies_.data() + b * kTaskNameCopy, kTaskNameCopy};
        remote_[k++] = {reinterpret_cast<void*>(batch_[b].name), kTaskNameCopy};
    }
    const bool copied = names_copied_ || (k > 0 && reader_.readv(local_.data(), remote_.data(), k));
    for (size_t b = 0; b < batch_n_; ++b) {
        Pending& p = batch_[b];
        if (p.ok && (p.len = tasks_.copy_name(p.name, names_.data() + b * kTaskNameBytes,
                                              copied ? name_copies_.data() + b * kTaskNameCopy : nullptr,
                                              kTaskNameCopy)) == 0) {
            p.ok = false;
            reject();
        }
    }
    // Read again: each coroutine still suspended where it was, the task still with its coroutine
    // and name. A task that ran meanwhile may have left a mixed copy.
    size_t from = 0;
    k = 0;
    for (size_t b = 0; b <= batch_n_; ++b) {
        const size_t need = b < batch_n_ && batch_[b].ok ? 2 * static_cast<size_t>(batch_[b].n) + 4 : 0;
        if (b == batch_n_ || k + need > kMaxIov) {
            if (k > 0 && !recheck_range(from, b, k))
                for (size_t j = from; j < b; ++j)
                    if (batch_[j].ok) {
                        batch_[j].ok = false;
                        reject();
                    }
            from = b;
            k = 0;
        }
        if (b == batch_n_ || need == 0) continue;
        const Pending& p = batch_[b];
        for (int i = 0; i < p.n; ++i) {
            const size_t at = b * kAwaitChain + static_cast<size_t>(i);
            local_[k] = {&re_states_[at], 1};
            remote_[k++] = {reinterpret_cast<void*>(coros_[at] + state_at_), 1};
            local_[k] = {&re_words_[b * (kAwaitChain + 3) + static_cast<size_t>(i)], 8};
            remote_[k++] = {reinterpret_cast<void*>(coros_[at] + instr_at_), 8};
        }
        uint64_t* again = &re_words_[b * (kAwaitChain + 3) + kAwaitChain];
        local_[k] = {&again[0], 8};
        remote_[k++] = {reinterpret_cast<void*>(p.task + L.task_coro), 8};
        local_[k] = {&again[1], 8};
        remote_[k++] = {reinterpret_cast<void*>(p.task + L.task_name), 8};
        local_[k] = {&again[2], 8};
        remote_[k++] = {reinterpret_cast<void*>(p.task + (L.task_awaited_by != 0 ? L.task_awaited_by : L.task_name)), 8};
        // The name's text too: a task that ended can leave its name in freed memory, and a new
        // task's coroutine where its own was, at the same addresses as the new task's.
        local_[k] = {names_again_.data() + b * kTaskNameCopy, within_page(p.name, kTaskNameCopy, L.str_compact_data)};
        remote_[k] = {reinterpret_cast<void*>(p.name), local_[k].iov_len};
        ++k;
    }
}

// The reads of tasks [from, to) made; each that moved is dropped and counted. False when the
// read failed.
bool WaitingTasks::recheck_range(size_t from, size_t to, size_t k) {
    if (!reader_.readv(local_.data(), remote_.data(), k)) return false;
    for (size_t b = from; b < to; ++b) {
        Pending& p = batch_[b];
        if (!p.ok) continue;
        const uint64_t* words = &re_words_[b * (kAwaitChain + 3)];
        bool same = words[kAwaitChain] == p.coro && words[kAwaitChain + 1] == p.name &&
                    (L.task_awaited_by == 0 || words[kAwaitChain + 2] == p.by);
        if (same) {
            char text[kTaskNameBytes];
            const size_t len = tasks_.copy_name(p.name, text, names_again_.data() + b * kTaskNameCopy,
                                                within_page(p.name, kTaskNameCopy, L.str_compact_data));
            same = len == p.len && std::memcmp(text, names_.data() + b * kTaskNameBytes, len) == 0;
        }
        for (int i = 0; same && i < p.n; ++i) {
            const size_t at = b * kAwaitChain + static_cast<size_t>(i);
            // 3.9/3.10: f_lasti is an int, the word read with it is not the frame's state
            const int64_t instr = objects_ ? static_cast<int64_t>(static_cast<int32_t>(words[i])) : static_cast<int64_t>(words[i]);
            same = static_cast<int8_t>(re_states_[at]) == seen_[2 * at] && instr == seen_[2 * at + 1];
        }
        if (!same) {
            p.ok = false;
            reject();
        }
    }
    return true;
}

// Frames for a chain, innermost first: from a chain resolved earlier at this tick with the same
// code objects at the same instructions, else read and checked.
bool WaitingTasks::resolve(const Walked* walked, int n, FrameRecord* frames) {
    uint64_t key = 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(n);
    for (int i = 0; i < n; ++i) key = (key ^ walked[i].code ^ (walked[i].instr << 1)) * 0x100000001b3ull;
    key |= 1;  // 0: an empty entry
    Resolved& r = resolved_[(key >> 32) % kResolved];
    bool same = n <= kCachedChain && r.key == key && r.n == n;
    for (int i = 0; same && i < n; ++i) same = r.code[i] == walked[i].code && r.instr[i] == walked[i].instr;
    if (same) {
        for (int i = 0; i < n; ++i) {
            frames[i] = r.records[i];
            frames[i].frame = walked[i].frame;
        }
        return true;
    }
    if (!capture_.resolve(walked, n, frames)) return false;
    if (n <= kCachedChain) {
        r.key = key;
        r.n = n;
        for (int i = 0; i < n; ++i) {
            r.code[i] = walked[i].code;
            r.instr[i] = walked[i].instr;
            r.records[i] = frames[i];
        }
    }
    return true;
}

int WaitingTasks::sample(size_t b, FrameRecord* frames) {
    const Pending& p = batch_[b];
    // Innermost first, as a walk gives them.
    for (int i = 0; i < p.n; ++i) walked_[static_cast<size_t>(i)] = chain(b)[p.n - 1 - i];
    if (!resolve(walked_.data(), p.n, frames)) {
        reject();
        return 0;
    }
    const int depth = tasks_.insert(frames, p.n, p.n - 1, p.task, names_.data() + b * kTaskNameBytes, p.len);
    // Most tasks are awaited by none (their copy said so), or by a task that awaits many (a
    // gather's, a TaskGroup's): its records, put after the task's, are read once, then checked
    // once per tick in one read (the task's own link to it was read again with the task).
    // 3.9-3.13: the awaiting task is the one the task's first callback led to before, taken
    // when the records kept for it are of the same future it awaits, the future it still awaits
    // at this tick (checked then, or now in the kept records' one read).
    const bool by_callbacks = L.task_awaited_by == 0;
    uint64_t future = 0;
    bool none = false;
    uint64_t by = by_callbacks ? tasks_.awaiter_kept(p.cb0, p.task, future, none) : p.by;
    if (none) return depth;
    if (const AsyncioTasks::KeptAwaiters* k = tasks_.kept_awaiters(by, future)) {
        std::copy(k->cells, k->cells + k->n, frames + depth);
        tasks_.parents_named_.fetch_add(k->levels, std::memory_order_relaxed);
        return depth + k->n;
    }
    if (by == 0 && (!by_callbacks || L.fut_callback0 == 0)) return depth;
    const uint64_t before = tasks_.parents_named();
    AwaitChain chain;
    const int full = by_callbacks
                         ? tasks_.name_awaiting_by_callbacks({p.task, 0, p.name, p.coro, 0, 0, p.cb0, p.waiter, p.by}, frames,
                                                             depth, depth - 1, &chain)
                         : tasks_.name_awaiting(p.task, frames, depth, depth - 1, &chain);
    if (by_callbacks) by = chain.n > 0 ? chain.level[0].task : 0;
    tasks_.keep_awaiters(by, chain, frames + depth, full - depth, tasks_.parents_named() - before);
    return full;
}

bool WaitingTasks::next(FrameRecord* frames, int& depth, uint64_t& weight) {
    for (;;) {
        while (emit_ < batch_n_) {
            const size_t b = emit_++;
            if (!batch_[b].ok) continue;
            depth = sample(b, frames);
            if (depth > 0) {
                weight = weight_;
                sampled_.fetch_add(1, std::memory_order_relaxed);
                return true;
            }
        }
        if (cur_ == nullptr) return false;
        if (fill_batch()) read_chains();
    }
}

}  // namespace spprof
