#include "asyncio_tasks.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "bytes.h"
#include "pyobjects.h"

namespace spprof {

namespace {
constexpr size_t kMaxEntries = 64;   // of the running-task dict: one per loop, churned by each step
constexpr size_t kMaxRunning = 16;   // loops running a task at one tick that are looked at
constexpr size_t kHeadBytes = 128;   // a dict, its keys' header, or the start of a name object
constexpr size_t kClosureCells = 8;  // of a callback's closure, looked at for a future
constexpr size_t kListCallbacks = 4; // of a future's list of callbacks, looked at for a wakeup
constexpr size_t kGroupValues = 16;  // of a TaskGroup's attribute values (it has 10)
}  // namespace

AsyncioTasks::AsyncioTasks(const spprof_layout& layout, SafeReader& reader)
    : owners_(kOwners), L(layout), reader_(reader), running_(kMaxRunning),
      buf_(std::max<size_t>({kMaxEntries * std::max<uint32_t>(layout.dk_entry_size, 1), layout.task_copy, kHeadBytes})),
      held_(kTaskParents * (layout.task_copy + kTaskNameCopy)) {}

// 3.9-3.13: the values of _asyncio._current_tasks, read once per tick. The dict changes at every
// task step: what a torn copy yields is checked like anything else (types, the frame on the
// stack) and, for the task named, read again after its name.
bool AsyncioTasks::load_from_dict() {
    loaded_ = true;
    n_running_ = 0;
    DictEntries e;
    // its keys are loops: a table of str keys is a torn read
    if (!read_dict_entries(L, reader_, L.current_tasks, buf_.data(), kMaxEntries * L.dk_entry_size, e) || e.str_keys)
        return false;
    if (e.n == 0) return true;
    keys_ = e.keys;
    // Copied out first: read_task() reuses the buffer.
    Running found[kMaxRunning];
    size_t m = 0;
    for (size_t i = 0; i < e.n && m < kMaxRunning; ++i) {
        const uint8_t* entry = buf_.data() + i * e.size;
        const uint64_t key = load_u64(entry + e.key), value = load_u64(entry + e.value);
        if (key != 0 && plausible(value)) found[m++] = {value, 0, 0, 0, e.first + i * e.size + e.value};
    }
    for (size_t i = 0; i < m; ++i) {
        Running r = found[i];
        if (read_task(r.task, r)) running_[n_running_++] = r;
        else reject();
    }
    return true;
}

// The task's coroutine, the address of that coroutine's frame and the task's name object.
bool AsyncioTasks::read_task(uint64_t task, Running& out) {
    if (!plausible(task) || !reader_.read(task, buf_.data(), L.task_copy)) return false;
    if (!is_task_type(load_u64(buf_.data() + L.ob_type))) return false;
    const uint64_t coro = load_u64(buf_.data() + L.task_coro);
    uint8_t c[kHeadBytes];
    if (!plausible(coro) || coro_bytes() > sizeof c || !reader_.read(coro, c, coro_bytes())) return false;
    return task_from(task, buf_.data(), c, out);
}

size_t AsyncioTasks::coro_bytes() const {
    return std::max(L.ob_type, L.coro_frame_inline ? 0u : L.coro_frame) + 8;
}

// Task `task` from its copy `t` (its type checked by the caller) and its coroutine's `c`.
bool AsyncioTasks::task_from(uint64_t task, const uint8_t* t, const uint8_t* c, Running& out) {
    const uint64_t coro = load_u64(t + L.task_coro), name = load_u64(t + L.task_name);
    if (!plausible(coro) || !plausible(name) || load_u64(c + L.ob_type) != L.coro_type) return false;
    const uint64_t frame = L.coro_frame_inline ? coro + L.coro_frame : load_u64(c + L.coro_frame);
    if (!plausible(frame)) return false;
    out.task = task;
    out.frame = frame;
    out.name = name;
    out.coro = coro;
    out.type = load_u64(t + L.ob_type);
    out.cb0 = L.fut_callback0 != 0 ? load_u64(t + L.fut_callback0) : 0;
    out.waiter = L.task_fut_waiter != 0 ? load_u64(t + L.task_fut_waiter) : 0;
    out.by = L.task_awaited_by != 0 ? load_u64(t + L.task_awaited_by) : 0;
    return true;
}

// asyncio's Task or a class made from it (a task factory's subclass keeps Task's C fields where
// Task has them). A chain of bases is short; a longer one is a torn or foreign read.
bool AsyncioTasks::is_task_type(uint64_t type) {
    for (int level = 0; level < 8; ++level) {
        if (type == L.task_type) return true;
        if (!plausible(type) || !reader_.read(type + L.type_base, &type, sizeof type)) return false;
    }
    return false;
}

// The running task's name, then, read after it, the record that said the task runs (it still
// says so) and the task (it still has the coroutine and the name it had). A short name and the
// records are one system call: a process_vm_readv copies its ranges in turn. 0 when the task could
// not be confirmed.
size_t AsyncioTasks::name_confirmed(const Running& r, uint64_t ts_addr, char* name, Running& again, bool running) {
    uint8_t head[kTaskNameCopy], coro[kHeadBytes];
    uint64_t keys = 0, now = 0;
    if (coro_bytes() > sizeof coro) return 0;
    struct iovec l[5], m[5];
    size_t n = 0, want = 0;
    const auto add = [&](void* to, uint64_t from, size_t len) {
        l[n] = {to, len};
        m[n++] = {reinterpret_cast<void*>(from), len};
        want += len;
    };
    add(head, r.name, sizeof head);
    if (running && L.tasks_model == SPPROF_TASKS_THREAD_STATE) {
        add(&now, ts_addr + L.ts_running_task, sizeof now);
    } else if (running) {
        add(&keys, L.current_tasks + L.dict_keys, sizeof keys);
        add(&now, r.entry, sizeof now);
    }
    add(buf_.data(), r.task, L.task_copy);
    add(coro, r.coro, coro_bytes());
    size_t len = 0;
    if (reader_.readv_prefix(l, m, n) == want) len = copy_name(r.name, name, head, sizeof head, false);
    if (len == 0) {
        // a long name, or one whose first bytes run past its memory: copied on its own, the records after it
        len = copy_name(r.name, name);
        if (len == 0 || reader_.readv_prefix(l + 1, m + 1, n - 1) != want - sizeof head) return 0;
    }
    const uint8_t* t = buf_.data();
    const bool still_running = !running || (now == r.task && (L.tasks_model == SPPROF_TASKS_THREAD_STATE || keys == keys_));
    const bool same = still_running && load_u64(t + L.ob_type) == r.type && load_u64(t + L.task_coro) == r.coro &&
                      load_u64(t + L.task_name) == r.name;
    return same && task_from(r.task, t, coro, again) ? len : 0;
}

// The name as UTF-8, at most kTaskNameBytes; 0 when it is not a str (or a default name's number).
// `pre`: the first `pre_len` bytes of the name object, when already copied.
size_t AsyncioTasks::copy_name(uint64_t name, char* out, const uint8_t* pre, size_t pre_len, bool may_read) {
    uint8_t h[kHeadBytes];
    const uint8_t* head = pre;
    if (pre == nullptr || pre_len < L.str_compact_data) {
        if (!may_read || L.str_compact_data > sizeof h || !reader_.read(name, h, L.str_compact_data)) return 0;
        head = h;
        pre_len = 0;
    }
    const uint64_t type = load_u64(head + L.ob_type);
    if (type == L.long_type && L.long_tag != 0 && L.long_digit + 8 <= L.str_compact_data) {
        // 3.12+: "Task-N" is made from N when asked for; N is a small non-negative int.
        const uint64_t tag = load_u64(head + L.long_tag);
        const uint64_t digits = tag >> 3, sign = tag & 3;
        if (sign == 2 || digits > 2) return 0;
        uint32_t d0, d1;
        std::memcpy(&d0, head + L.long_digit, 4);
        std::memcpy(&d1, head + L.long_digit + 4, 4);
        const uint64_t v = sign == 1 ? 0 : digits == 1 ? d0 : (static_cast<uint64_t>(d1) << 30) | d0;
        int n = std::snprintf(out, kTaskNameBytes, "Task-%llu", static_cast<unsigned long long>(v));
        return n > 0 ? static_cast<size_t>(n) : 0;
    }
    StrShape s;
    if (!str_shape(L, head, s) || s.chars == 0) return 0;
    const size_t take = std::min(s.chars, kTaskNameBytes);
    uint8_t copy[kTaskNameBytes * 4];
    const uint8_t* data = copy;
    if (s.data + take * s.kind <= pre_len) data = pre + s.data;
    else if (!may_read || !reader_.read(name + s.data, copy, take * s.kind)) return 0;
    size_t len = 0;
    for (size_t i = 0; i < take; ++i) {
        const uint32_t cp = str_char(data, s.kind, i);
        if (s.ascii && cp >= 0x80) return 0;
        char b[4];
        const size_t n = utf8_encode(cp, b);
        if (len + n > kTaskNameBytes) break;  // cut at a character
        std::memcpy(out + len, b, n);
        len += n;
    }
    return len;
}

int AsyncioTasks::insert(FrameRecord* frames, int depth, int at, uint64_t task, const char* name, size_t len) {
    const int cells = static_cast<int>(task_name_cells(len));
    const int head = at + 1 + cells;
    std::copy_backward(frames + at + 1, frames + depth, frames + depth + 1 + cells);
    for (int j = 0; j < cells; ++j) {
        FrameRecord& c = frames[head - 1 - j];
        std::memset(&c, 0, sizeof c);
        std::memcpy(&c, name + j * sizeof(FrameRecord), std::min(sizeof(FrameRecord), len - j * sizeof(FrameRecord)));
    }
    frames[head] = {task, static_cast<uint64_t>(len), kTaskRecord, 0};
    return depth + 1 + cells;
}

// 3.14: the tasks awaiting `task`, whose record's head is at `head`, each put right above the
// one it awaits. A link that changed under the reads, a set of awaiters, or anything that is not
// a task ends the chain: what was put so far held when it was read.
int AsyncioTasks::name_awaiting(uint64_t task, FrameRecord* frames, int depth, int head, AwaitChain* chain) {
    AwaitChain none;
    AwaitChain& c = chain != nullptr ? *chain : none;
    c.n = 0;
    c.whole = false;
    if (L.task_awaited_by == 0) return depth;
    uint64_t awaited = task;
    for (int level = 0; level < kTaskParents; ++level) {
        uint64_t by = 0, again = 0;
        if (!reader_.read(awaited + L.task_awaited_by, &by, sizeof by)) return depth;
        if (by == 0 || by == awaited) {
            c.end = by;
            c.whole = true;
            return depth;
        }
        Running p{}, q{};
        if (!read_task(by, p)) return depth;
        char name[kTaskNameBytes];
        const size_t len = copy_name(p.name, name);
        if (len == 0 || !reader_.read(awaited + L.task_awaited_by, &again, sizeof again) || again != by ||
            !read_task(by, q) || q.name != p.name) {
            reject();
            return depth;
        }
        const int grown = insert(frames, depth, head, by, name, len);
        head += grown - depth;
        depth = grown;
        parents_named_.fetch_add(1, std::memory_order_relaxed);
        AwaitChain::Level& l = c.level[c.n++];
        l = {by, q.type, q.coro, q.name, len, {}, 0, 0};
        std::memcpy(l.text, name, len);
        awaited = by;
    }
    c.whole = true;
    return depth;
}

int AsyncioTasks::name_awaiting_by_callbacks(Running cur, FrameRecord* frames, int depth, int head, AwaitChain* chain) {
    AwaitChain none;
    AwaitChain& c = chain != nullptr ? *chain : none;
    c.n = 0;
    c.whole = false;
    if (L.fut_callback0 == 0) return depth;
    for (int level = 0; level < kTaskParents; ++level) {
        Running p{}, q{};
        uint64_t future = 0;
        const Follow f = awaiter_of(cur, p, future);
        if (f != Follow::Found) {
            // kept only when the last level's callback can lead to no awaiter while it stays
            c.whole = level > 0 && f == Follow::Never;
            return depth;
        }
        char name[kTaskNameBytes];
        const size_t len = copy_name(p.name, name);
        if (len == 0 || !read_task(p.task, q) || q.waiter != future || q.name != p.name) {
            reject();
            return depth;
        }
        const int grown = insert(frames, depth, head, q.task, name, len);
        head += grown - depth;
        depth = grown;
        parents_named_.fetch_add(1, std::memory_order_relaxed);
        AwaitChain::Level& l = c.level[c.n++];
        l = {q.task, q.type, q.coro, q.name, len, {}, future, q.cb0};
        std::memcpy(l.text, name, len);
        cur = q;
    }
    c.whole = true;
    return depth;
}

int AsyncioTasks::name_awaiters(const Running& task, FrameRecord* frames, int depth, int head) {
    const bool by_callbacks = L.task_awaited_by == 0;
    uint64_t future = 0;
    bool none = false;
    const uint64_t by = by_callbacks ? awaiter_kept(task.cb0, task.task, future, none) : task.by;
    if (none) return depth;
    // 3.9-3.13: what the task's first callback led to before, taken when the records kept are
    // of the same future awaited (which their check reads again); 3.14: its own link, as copied.
    if (const KeptAwaiters* k = kept_awaiters(by, future)) {
        std::copy_backward(frames + head + 1, frames + depth, frames + depth + k->n);
        std::copy(k->cells, k->cells + k->n, frames + head + 1);
        parents_named_.fetch_add(k->levels, std::memory_order_relaxed);
        return depth + k->n;
    }
    if (!by_callbacks && by == 0) return depth;
    AwaitChain chain;
    const uint64_t before = parents_named();
    const int full = by_callbacks ? name_awaiting_by_callbacks(task, frames, depth, head, &chain)
                                  : name_awaiting(task.task, frames, depth, head, &chain);
    keep_awaiters(by_callbacks ? (chain.n > 0 ? chain.level[0].task : 0) : by, chain, frames + head + 1, full - depth,
                  parents_named() - before);  // the callers stay
    return full;
}

const AsyncioTasks::KeptAwaiters* AsyncioTasks::kept_awaiters(uint64_t by, uint64_t future) {
    if (by == 0) return nullptr;
    KeptAwaiters& k = kept_[(by >> 4) % kKept];
    if (k.by != by || (L.task_awaited_by == 0 && (k.chain.n == 0 || k.chain.level[0].future != future)))
        return nullptr;
    if (k.tick != tick_ && !(k.whole && awaiting_holds(k.chain))) return nullptr;
    k.tick = tick_;
    return &k;
}

void AsyncioTasks::keep_awaiters(uint64_t by, const AwaitChain& chain, const FrameRecord* cells, int n,
                                 uint64_t levels) {
    if (by == 0) return;
    KeptAwaiters& k = kept_[(by >> 4) % kKept];
    k.by = by;
    k.tick = tick_;
    k.chain = chain;
    k.whole = chain.whole && chain.n > 0 && chain.level[0].task == by;
    k.n = n;
    k.levels = levels;
    std::copy(cells, cells + n, k.cells);
}

AsyncioTasks::Follow AsyncioTasks::awaiter_of(const Running& awaited, Running& out, uint64_t& future) {
    if (awaited.cb0 == 0) return Follow::Never;
    if (!plausible(awaited.cb0)) return Follow::NotNow;
    Link& c = links_[(awaited.cb0 >> 4) % kLinks];
    // A wakeup on the task itself leads to that task only; a closure's future is shared by the
    // tasks a gather or wait was given.
    if (c.via == awaited.cb0 && (!c.direct || c.future == awaited.task) && link_holds(c) && read_task(c.task, out) &&
        out.waiter == c.future) {
        future = c.future;
        return Follow::Found;
    }
    uint64_t task = 0, fut = 0, type = 0, holder = 0;
    const Follow f = follow_callback(awaited.cb0, awaited.task, task, fut, type, holder);
    if (f != Follow::Found) return f;
    if (!read_task(task, out) || out.waiter != fut) return Follow::NotNow;
    c = {awaited.cb0, fut, task, fut == awaited.task, tick_, type, holder};
    future = fut;
    return Follow::Found;
}

uint64_t AsyncioTasks::awaiter_kept(uint64_t cb0, uint64_t task, uint64_t& future, bool& none) {
    Link& c = links_[(cb0 >> 4) % kLinks];
    future = c.future;
    none = cb0 == 0;
    return plausible(cb0) && c.via == cb0 && (!c.direct || c.future == task) && link_holds(c) ? c.task : 0;
}

bool AsyncioTasks::link_holds(Link& c) {
    if (c.checked == tick_) return true;
    uint64_t type = 0, holder = 0;
    bool wakeup = false;
    if (callback_shape(c.via, type, holder, wakeup) != Shape::Known || type != c.type || holder != c.holder) return false;
    c.checked = tick_;
    return true;
}

AsyncioTasks::Shape AsyncioTasks::callback_shape(uint64_t via, uint64_t& type, uint64_t& holder, bool& wakeup) {
    uint8_t h[kHeadBytes];
    const size_t n = std::max({L.ob_type, L.func_closure, L.partial_args, L.method_self, L.wakeup_task, L.wakeup_tag_off}) + 8;
    if (!plausible(via) || n > sizeof h || !reader_.read(via, h, n)) return Shape::Unread;
    type = load_u64(h + L.ob_type);
    wakeup = type == L.wakeup_type && (L.wakeup_tag_off == 0 || load_u64(h + L.wakeup_tag_off) == L.wakeup_tag);
    if (wakeup)
        holder = load_u64(h + L.wakeup_task);
    else if (type == L.function_type)
        holder = load_u64(h + L.func_closure);
    else if (L.partial_type != 0 && type == L.partial_type)
        holder = load_u64(h + L.partial_args);
    else if (L.values_kind != 0 && type == L.method_type)
        holder = load_u64(h + L.method_self);
    else
        return Shape::None;
    return Shape::Known;
}

bool AsyncioTasks::wakeup_task(uint64_t callback, uint64_t& task) {
    uint64_t type = 0;
    bool wakeup = false;
    return callback_shape(callback, type, task, wakeup) == Shape::Known && wakeup && plausible(task);
}

bool AsyncioTasks::is_future_type(uint64_t type) {
    for (int level = 0; level < 8; ++level) {
        if (type == L.future_type) return true;
        if (!plausible(type) || !reader_.read(type + L.type_base, &type, sizeof type)) return false;
    }
    return false;
}

AsyncioTasks::Follow AsyncioTasks::follow_callback(uint64_t via, uint64_t awaited, uint64_t& task, uint64_t& future,
                                                  uint64_t& type, uint64_t& holder) {
    bool wakeup = false;
    const Shape shape = callback_shape(via, type, holder, wakeup);
    if (shape != Shape::Known) return shape == Shape::Unread ? Follow::NotNow : Follow::Never;
    if (wakeup) {
        if (!plausible(holder)) return Follow::NotNow;
        task = holder;
        future = awaited;
        return Follow::Found;
    }
    // What may hold the future: a function's closure (in cells), a partial's args, the values of
    // a TaskGroup's attributes (its bound method's self), which change as the group goes on.
    const bool in_cells = type == L.function_type, in_group = type == L.method_type;
    if (in_cells && holder == 0) return Follow::Never;  // no closure
    uint8_t t[std::max(kHeadBytes + 8 * kClosureCells, 8 * kGroupValues)];
    const uint8_t* slots = t;
    size_t items = 0;
    if (in_group) {
        if (!group_values(holder, t)) return Follow::NotNow;
        items = kGroupValues;
    } else {
        if (!plausible(holder) || L.tuple_items + 8 * kClosureCells > sizeof t ||
            !reader_.read(holder, t, L.tuple_items + 8 * kClosureCells) || load_u64(t + L.ob_type) != L.tuple_type)
            return Follow::NotNow;
        items = std::min<uint64_t>(load_u64(t + L.ob_size), kClosureCells);
        slots = t + L.tuple_items;
    }
    for (size_t i = 0; i < items; ++i) {
        uint64_t obj = load_u64(slots + 8 * i);
        if (in_cells) {
            uint8_t cell[kHeadBytes];
            const size_t cn = std::max(L.ob_type, L.cell_ref) + 8;
            if (!plausible(obj) || cn > sizeof cell || !reader_.read(obj, cell, cn) ||
                load_u64(cell + L.ob_type) != L.cell_type)
                continue;
            obj = load_u64(cell + L.cell_ref);
        }
        // A future the holder's task waits on; not a task it holds (a TaskGroup's parent task,
        // whose own awaiter is not the group's child's)
        uint64_t obj_type = 0;
        if (!plausible(obj) || !reader_.read(obj + L.ob_type, &obj_type, sizeof obj_type) || !is_future_type(obj_type) ||
            is_task_type(obj_type))
            continue;
        if (!waits_on(obj, task)) continue;
        future = obj;
        return Follow::Found;
    }
    return Follow::NotNow;  // a cell, an argument or an attribute may hold the future later
}

bool AsyncioTasks::group_values(uint64_t obj, uint8_t* out) {
    if (!plausible(obj)) return false;
    constexpr size_t kValuesBytes = 8 * kGroupValues;
    if (L.values_kind == 3) {
        // one read from the `valid` byte on: values a dict of the object's own replaced are stale
        uint8_t buf[8 + kValuesBytes];
        const int32_t lead = L.values_at - L.values_valid_at;
        if (lead <= 0 || lead > 8 ||
            !reader_.read(obj + static_cast<int64_t>(L.values_valid_at), buf, static_cast<size_t>(lead) + kValuesBytes) ||
            buf[0] == 0)
            return false;
        std::memcpy(out, buf + lead, kValuesBytes);
        return true;
    }
    uint64_t array = 0;
    if (!reader_.read(obj + static_cast<int64_t>(L.values_at), &array, sizeof array)) return false;
    if (L.values_kind == 2) {
        if ((array & 1) == 0) return false;  // a dict of its own instead: not read
        ++array;
    }
    return plausible(array) && reader_.read(array, out, kValuesBytes);
}

bool AsyncioTasks::waits_on(uint64_t fut, uint64_t& task) {
    uint8_t f[kHeadBytes];
    const size_t fn = std::max(L.fut_callback0, L.fut_callbacks) + 8;
    if (fn > sizeof f || !reader_.read(fut, f, fn)) return false;
    if (wakeup_task(load_u64(f + L.fut_callback0), task)) return true;
    // a shield's outer future has its own callback first
    const uint64_t list = L.fut_callbacks != 0 ? load_u64(f + L.fut_callbacks) : 0;
    uint8_t l[kHeadBytes];
    const size_t ln = std::max({L.ob_type, L.ob_size, L.list_items}) + 8;
    if (!plausible(list) || ln > sizeof l || !reader_.read(list, l, ln) || load_u64(l + L.ob_type) != L.list_type)
        return false;
    const size_t n = std::min<uint64_t>(load_u64(l + L.ob_size), kListCallbacks);
    const uint64_t item0 = load_u64(l + L.list_items);
    uint64_t items[kListCallbacks];
    if (n == 0 || !plausible(item0) || !reader_.read(item0, items, 8 * n)) return false;
    for (size_t k = 0; k < n; ++k) {
        uint8_t pair[kHeadBytes];  // (callback, context)
        if (!plausible(items[k]) || L.tuple_items + 8 > sizeof pair || !reader_.read(items[k], pair, L.tuple_items + 8) ||
            load_u64(pair + L.ob_type) != L.tuple_type)
            continue;
        if (wakeup_task(load_u64(pair + L.tuple_items), task)) return true;
    }
    return false;
}

bool AsyncioTasks::awaiting_holds(const AwaitChain& c) {
    const bool by_callbacks = L.task_awaited_by == 0;
    if (!c.whole || c.n == 0 || (by_callbacks && L.fut_callback0 == 0)) return false;
    const size_t n = static_cast<size_t>(c.n);
    struct iovec local[2 * kTaskParents], remote[2 * kTaskParents];
    uint8_t* names = held_.data() + n * L.task_copy;
    for (size_t i = 0; i < n; ++i) {
        local[2 * i] = {held_.data() + i * L.task_copy, L.task_copy};
        remote[2 * i] = {reinterpret_cast<void*>(c.level[i].task), L.task_copy};
        local[2 * i + 1] = {names + i * kTaskNameCopy, kTaskNameCopy};
        remote[2 * i + 1] = {reinterpret_cast<void*>(c.level[i].name), kTaskNameCopy};
    }
    if (n > 0 && !reader_.readv(local, remote, 2 * n)) return false;
    for (size_t i = 0; i < n; ++i) {
        const AwaitChain::Level& l = c.level[i];
        const uint8_t* copy = held_.data() + i * L.task_copy;
        const bool last = i + 1 == n;
        if (load_u64(copy + L.ob_type) != l.type || load_u64(copy + L.task_coro) != l.coro ||
            load_u64(copy + L.task_name) != l.name)
            return false;
        if (by_callbacks ? load_u64(copy + L.task_fut_waiter) != l.future || load_u64(copy + L.fut_callback0) != l.callback
                         : !(last && c.n == kTaskParents) &&
                               load_u64(copy + L.task_awaited_by) != (last ? c.end : c.level[i + 1].task))
            return false;
        char text[kTaskNameBytes];
        if (copy_name(l.name, text, names + i * kTaskNameCopy, kTaskNameCopy) != l.len ||
            std::memcmp(text, l.text, l.len) != 0)
            return false;
    }
    return true;
}

int AsyncioTasks::name_running(uint64_t ts_addr, FrameRecord* frames, int depth) {
    if (!enabled() || depth == 0) return depth;
    const Running* candidates;
    size_t n;
    Running own{};
    if (L.tasks_model == SPPROF_TASKS_THREAD_STATE) {
        uint64_t task = 0;
        if (!reader_.read(ts_addr + L.ts_running_task, &task, sizeof task)) { reject(); return depth; }
        if (task == 0) return name_owner(ts_addr, frames, depth);
        if (!read_task(task, own)) { reject(); return depth; }
        candidates = &own;
        n = 1;
    } else {
        if (!loaded_ && !load_from_dict()) reject();
        candidates = running_.data();
        n = n_running_;
    }
    return match(ts_addr, frames, depth, candidates, n, L.tasks_model == SPPROF_TASKS_CURRENT_DICT);
}

// `reload`: the dict's table may have been replaced under the first read (it is, every few
// steps, as entries come and go): read it once more before giving up on the thread.
int AsyncioTasks::match(uint64_t ts_addr, FrameRecord* frames, int depth, const Running* candidates, size_t n,
                        bool reload) {
    for (size_t i = 0; i < n; ++i) {
        const Running& r = candidates[i];
        for (int at = 0; at < depth; ++at) {
            if (frames[at].frame != r.frame) continue;
            char name[kTaskNameBytes];
            Running again{};
            const size_t len = name_confirmed(r, ts_addr, name, again);
            if (len == 0) {
                if (reload && load_from_dict()) return match(ts_addr, frames, depth, running_.data(), n_running_, false);
                // The record moved on while the name was copied (3.14, 50 tasks of 15 us steps:
                // some 100 samples in 8 s); the walk still ran this task's coroutine.
                owner_slot(r.frame) = {r.frame, r.task};
                return name_owner(ts_addr, frames, depth);
            }
            named_.fetch_add(1, std::memory_order_relaxed);
            owner_slot(r.frame) = {r.frame, r.task};
            const int named = insert(frames, depth, at, r.task, name, len);
            return name_awaiters(again, frames, named, at + named - depth);
        }
    }
    // No record names the walk's task: the loop has gone on to the task it names now, which is
    // kept by its coroutine's frame for the walks that meet it later. Learning a task only from a
    // record read while it still ran named 75-78 % of the first second's samples of 50 tasks at
    // 10 ms (a task had to be caught that way once first), 96-100 % later.
    const int named = name_owner(ts_addr, frames, depth);
    for (size_t i = 0; i < n; ++i) owner_slot(candidates[i].frame) = {candidates[i].frame, candidates[i].task};
    return named;
}

int AsyncioTasks::name_owner(uint64_t ts_addr, FrameRecord* frames, int depth) {
    for (int at = 0; at < depth; ++at) {
        const Owner o = owner_slot(frames[at].frame);
        if (o.frame == 0 || o.frame != frames[at].frame) continue;
        // The walk saw this coroutine's frame run on the thread: the task that holds the coroutine
        // runs there, whatever its loop's record says by now.
        Running r{};
        char name[kTaskNameBytes];
        Running again{};
        size_t len = 0;
        if (!read_task(o.task, r) || r.frame != o.frame || (len = name_confirmed(r, ts_addr, name, again, false)) == 0) {
            owner_slot(o.frame) = {};
            reject();
            return depth;
        }
        named_.fetch_add(1, std::memory_order_relaxed);
        const int named = insert(frames, depth, at, r.task, name, len);
        return name_awaiters(again, frames, named, at + named - depth);
    }
    return depth;
}

}  // namespace spprof
