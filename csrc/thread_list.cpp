#include "thread_list.h"

#include <algorithm>

#include "bytes.h"

namespace spprof {

ThreadList::ThreadList(const spprof_layout& layout, SafeReader& reader, const NativeIds& ids, size_t initial,
                       size_t bound)
    : L(layout), reader_(reader), ids_(ids), max_(0), bound_(std::max<size_t>(bound, 1)) {
    gil_.resize(L.gil_size);
    max_ = std::min(std::max<size_t>(initial, 1), bound_);
    grow();
}

// To 2 * max_ (the first time to max_), keeping the threads copied so far.
void ThreadList::grow() {
    const size_t n = copies_.empty() ? max_ : std::min(bound_, max_ * 2);
    copies_.resize(n * L.ts_size);
    seen_.resize(n);
    quiet_.resize(n);
    fresh_epoch_.resize(n);
    awake_.reserve(n);
    iov_local_.resize(n + 2);
    iov_remote_.resize(n + 2);
    for (size_t i = 0; i < count_; ++i) seen_[i].copy = copies_.data() + i * L.ts_size;
    size_t slots = 16;
    while (slots < 2 * n) slots *= 2;
    visited_.assign(slots, 0);
    visited_epoch_.assign(slots, 0);
    epoch_ = 0;
    for (size_t i = 0; i < count_; ++i) first_visit(seen_[i].tstate);
    max_ = n;
}

void ThreadList::forget_visits() {
    if (++epoch_ == 0) {  // wrapped: no stale epoch may match
        std::fill(visited_epoch_.begin(), visited_epoch_.end(), 0);
        epoch_ = 1;
    }
}

bool ThreadList::first_visit(uint64_t ts) {
    if (epoch_ == 0) forget_visits();
    const size_t mask = visited_.size() - 1;
    for (size_t s = static_cast<size_t>(mix64(0, ts)) & mask;; s = (s + 1) & mask) {
        if (visited_epoch_[s] != epoch_) {
            visited_epoch_[s] = epoch_;
            visited_[s] = ts;
            return true;
        }
        if (visited_[s] == ts) return false;
    }
}

void ThreadList::record(size_t i, uint64_t ts) {
    ThreadSeen& t = seen_[i];
    const uint8_t* copy = copies_.data() + i * L.ts_size;
    t.tstate = ts;
    t.copy = copy;
    t.ident = load_u64(copy + L.ts_thread_id);
    t.tid = L.has_native_thread_id ? static_cast<uint32_t>(load_u64(copy + L.ts_native_thread_id))
                                   : ids_.get(t.ident);
    // 3.11+: the top of the frame stack moves on every call; before, the frame pointer itself
    t.activity = mix64(load_u64(copy + L.ts_frame), L.has_native_thread_id ? load_u64(copy + L.ts_datastack_top) : 0);
}

void ThreadList::forget_marks() {
    std::fill(quiet_.begin(), quiet_.begin() + static_cast<long>(count_), 0);
    awake_dirty_ = true;
}

size_t ThreadList::position(uint64_t tstate) const {
    for (size_t i = 0; i < count_; ++i)
        if (seen_[i].tstate == tstate) return i;
    return count_;
}

void ThreadList::next_epoch() {
    if (++epoch_copy_ == 0) {  // wrapped: no old epoch may match
        std::fill(fresh_epoch_.begin(), fresh_epoch_.end(), 0);
        epoch_copy_ = 1;
    }
}

// Called before the copy, while gil_* still hold what the previous enumerate() read.
bool ThreadList::copy_all_due() {
    if (force_all_ || since_all_ + 1 >= kCopyAllEvery) {
        ++since_all_;
        // The GIL read after the last tick's copies, against the one read before the last full
        // copy: the same count of holder changes and the same last holder, who holds it still
        // (so it has not exited either).
        const bool same_holder = !force_all_ && all_gil_known_ && gil_read_ && gil_switches_ == all_switches_ &&
                                 gil_last_ == all_last_ && gil_holder_ == gil_last_ && gil_last_ != 0;
        if (same_holder) return false;
        since_all_ = 0;
        force_all_ = false;
        all_gil_known_ = gil_read_;
        all_switches_ = gil_switches_;
        all_last_ = gil_last_;
        return true;
    }
    ++since_all_;
    return false;
}

// The list rarely changes between ticks: read the head, the thread states of the last tick (less
// those marked quiet) and the GIL in one system call, and keep the result if the chain still
// links them in the same order. A new thread is linked in at the head, which is always read; an
// uncopied thread's link is unknown, and the check resumes at the next copied one. Only the
// copied positions are visited: a quiet thread costs nothing here.
bool ThreadList::enumerate_as_before() {
    const size_t n = count_;
    if (n == 0 || n >= max_) return false;
    copied_all_ = copy_all_due();
    if (awake_dirty_) {
        awake_.clear();
        for (size_t i = 0; i < n; ++i)
            if (!quiet_[i]) awake_.push_back(static_cast<uint32_t>(i));
        awake_dirty_ = false;
    }
    const size_t m = copied_all_ ? n : awake_.size();
    auto at = [&](size_t j) -> size_t { return copied_all_ ? j : awake_[j]; };
    uint64_t head = 0;
    iov_local_[0] = {&head, sizeof head};
    iov_remote_[0] = {reinterpret_cast<void*>(L.interp + L.interp_threads_head), sizeof head};
    size_t k = 1;
    for (size_t j = 0; j < m; ++j) {
        const size_t i = at(j);
        iov_local_[k] = {copies_.data() + i * L.ts_size, L.ts_size};
        iov_remote_[k++] = {reinterpret_cast<void*>(seen_[i].tstate), L.ts_size};
    }
    iov_local_[k] = {gil_.data(), gil_.size()};
    iov_remote_[k++] = {reinterpret_cast<void*>(L.gil), gil_.size()};
    next_epoch();
    if (!reader_.readv(iov_local_.data(), iov_remote_.data(), k)) return false;
    // Each copied state's link must name the state at the next position (none after the last).
    auto links = [&](size_t pos, uint64_t ts) { return pos < n ? seen_[pos].tstate == ts : ts == 0; };
    if (!links(0, head)) return false;
    for (size_t j = 0; j < m; ++j) {
        const size_t i = at(j);
        const uint8_t* copy = copies_.data() + i * L.ts_size;
        if (load_u64(copy + L.ts_interp) != L.interp || !links(i + 1, load_u64(copy + L.ts_next))) return false;
    }
    for (size_t j = 0; j < m; ++j) {
        const size_t i = at(j);
        fresh_epoch_[i] = epoch_copy_;
        record(i, seen_[i].tstate);
    }
    read_gil();
    kept_ = true;
    return true;
}

void ThreadList::read_gil() {
    // `locked` is an int on every version (-1 before the GIL exists); `last_holder` a pointer
    gil_last_ = load_u64(gil_.data() + L.gil_last_holder);
    gil_holder_ = load_i32(gil_.data() + L.gil_locked) == 1 ? gil_last_ : 0;
    gil_switches_ = load_u64(gil_.data() + L.gil_switch_number);
    gil_read_ = L.has_gil_switches != 0;
}

bool ThreadList::enumerate() {
    overflowed_ = false;
    kept_ = false;
    // enumerate_as_before() weighs the GIL of the previous enumerate(), still in gil_*
    if (enumerate_as_before()) return true;
    gil_read_ = false;
    gil_holder_ = 0;
    since_all_ = 0;
    force_all_ = false;
    all_gil_known_ = false;  // the GIL before this walk is unknown here
    copied_all_ = true;
    count_ = 0;
    uint64_t ts = 0;
    if (!reader_.read(L.interp + L.interp_threads_head, &ts, sizeof ts)) return false;
    forget_visits();
    next_epoch();
    while (ts != 0) {
        if (count_ == max_ && max_ < bound_) grow();  // on the sampler thread, never per sample
        if (count_ == max_) { overflowed_ = true; break; }
        if (!plausible(ts) || !first_visit(ts)) { count_ = 0; return false; }
        uint8_t* copy = copies_.data() + count_ * L.ts_size;
        // not ours: freed and reused
        if (!reader_.read(ts, copy, L.ts_size) || load_u64(copy + L.ts_interp) != L.interp) { count_ = 0; return false; }
        fresh_epoch_[count_] = epoch_copy_;
        quiet_[count_] = 0;
        record(count_++, ts);
        ts = load_u64(copy + L.ts_next);
    }
    awake_dirty_ = true;
    // After the thread states: what it says holds from here on, which is all wall mode needs
    if (reader_.read(L.gil, gil_.data(), gil_.size())) read_gil();
    return true;
}

bool ThreadList::refresh(size_t i) {
    ThreadSeen& t = seen_[i];
    uint8_t* copy = copies_.data() + i * L.ts_size;
    const bool ok = reader_.read(t.tstate, copy, L.ts_size) && load_u64(copy + L.ts_interp) == L.interp &&
                    load_u64(copy + L.ts_thread_id) == t.ident;
    fresh_epoch_[i] = ok ? epoch_copy_ : 0;
    if (!ok) force_all_ = true;  // its copy is now torn: never leave it stale
    return ok;
}

}  // namespace spprof
