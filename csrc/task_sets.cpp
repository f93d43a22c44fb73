#include "task_sets.h"

#include <unistd.h>

#include <algorithm>

#include "bytes.h"
#include "pyobjects.h"

namespace spprof {

namespace {
constexpr uint64_t kMaxMask = (1ull << 26) - 1;  // a larger table is a torn read
constexpr size_t kRefBytes = 32;                 // of a weak reference: its type and its object
constexpr size_t kHead = 128;
}  // namespace

TaskSets::TaskSets(const spprof_layout& layout, SafeReader& reader)
    : L(layout), reader_(reader), entries_(kSetChunk * std::max<uint32_t>(layout.set_entry_size, 1)),
      refs_(kSetChunk * kRefBytes), dict_(kThreadDictEntries * std::max<uint32_t>(layout.dk_entry_size, 16)),
      objs_(kSetChunk), local_(kSetChunk), remote_(kSetChunk), pid_(static_cast<int32_t>(getpid())) {}

uint64_t TaskSets::running_loop(uint64_t ts_addr) {
    uint64_t loop = 0;
    if (L.ts_running_loop != 0) return reader_.read(ts_addr + L.ts_running_loop, &loop, sizeof loop) ? loop : 0;
    if (L.ts_dict == 0) return 0;
    // 3.9-3.12: the entry of the thread's dict whose key is that very str (only _asyncio sets it).
    uint64_t dict = 0;
    DictEntries e;
    if (!reader_.read(ts_addr + L.ts_dict, &dict, sizeof dict) || !plausible(dict)) return 0;
    if (!read_dict_entries(L, reader_, dict, dict_.data(), dict_.size(), e)) return 0;
    for (size_t i = 0; i < e.n; ++i) {
        const uint8_t* entry = dict_.data() + i * e.size;
        if (load_u64(entry + e.key) == L.running_loop_key) loop = load_u64(entry + e.value);
    }
    if (L.loop_holder_type != 0 && plausible(loop)) {
        // 3.9-3.11: _asyncio's holder; a loop set by the parent of a forked process runs in none.
        uint8_t h[64];
        const uint64_t holder = loop;
        loop = 0;
        if (L.holder_pid + 4 <= sizeof h && reader_.read(holder, h, L.holder_pid + 4) &&
            load_u64(h + L.ob_type) == L.loop_holder_type && load_i32(h + L.holder_pid) == pid_)
            loop = load_u64(h + L.holder_loop);
    }
    return plausible(loop) && loop != L.none_object ? loop : 0;
}

bool TaskSets::read_header(uint64_t& table, uint64_t& mask) {
    uint8_t h[kHead];
    const size_t hn = std::max(L.set_mask, L.set_table) + 8;
    if (hn > sizeof h || !reader_.read(L.scheduled_tasks, h, hn)) return false;
    table = load_u64(h + L.set_table);
    mask = load_u64(h + L.set_mask);
    return plausible(table) && mask <= kMaxMask && ((mask + 1) & mask) == 0;
}

bool TaskSets::begin(uint64_t index, uint64_t table) {
    torn_ = false;
    chunk_n_ = chunk_i_ = 0;
    uint64_t now = 0, mask = 0;
    if (!read_header(now, mask) || (table != 0 && now != table)) {
        torn_ = true;
        return false;
    }
    table_ = now;
    mask_ = mask;
    index_ = index;
    return true;
}

// The next chunk's entries, then their weak references in one read (or each alone, when one of
// them cannot be read: that one is skipped).
bool TaskSets::read_chunk() {
    uint64_t table = 0, mask = 0;
    if (!read_header(table, mask) || table != table_ || mask != mask_) {
        torn_ = true;
        return false;
    }
    chunk_at_ = index_;
    chunk_n_ = std::min(kSetChunk, mask_ + 1 - index_);
    chunk_i_ = 0;
    if (!reader_.read(table_ + index_ * L.set_entry_size, entries_.data(), chunk_n_ * L.set_entry_size)) {
        torn_ = true;
        return false;
    }
    size_t m = 0;
    size_t which[kSetChunk];
    for (uint64_t i = 0; i < chunk_n_; ++i) {
        const uint64_t key = load_u64(entries_.data() + i * L.set_entry_size + L.set_entry_key);
        objs_[i] = 0;
        if (!plausible(key)) continue;  // empty
        which[m] = i;
        local_[m] = {refs_.data() + i * kRefBytes, kRefBytes};
        remote_[m++] = {reinterpret_cast<void*>(key), kRefBytes};
    }
    const bool whole = m == 0 || reader_.readv(local_.data(), remote_.data(), m);
    for (size_t j = 0; j < m; ++j) {
        if (!whole && !reader_.read(reinterpret_cast<uint64_t>(remote_[j].iov_base), local_[j].iov_base, kRefBytes))
            continue;
        const uint8_t* r = refs_.data() + which[j] * kRefBytes;
        // A dummy, or anything but a weak reference, is no entry; a reference to None, a task gone.
        if (load_u64(r + L.ob_type) == L.weakref_type && L.wr_object + 8 <= kRefBytes)
            objs_[which[j]] = load_u64(r + L.wr_object);
    }
    return true;
}

bool TaskSets::next(uint64_t& obj, uint64_t& index_after) {
    for (;;) {
        if (chunk_i_ >= chunk_n_) {
            if (index_ > mask_ || !read_chunk()) return false;
            index_ += chunk_n_;
        }
        const uint64_t i = chunk_i_++;
        if (!plausible(objs_[i])) continue;
        obj = objs_[i];
        index_after = chunk_at_ + i + 1;
        return true;
    }
}

}  // namespace spprof
