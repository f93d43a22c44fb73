// Where asyncio lists its tasks on 3.9-3.13, for waiting_tasks.h: every task not running
// eagerly is in _asyncio._scheduled_tasks (3.9-3.11: _all_tasks), a WeakSet whose plain set holds a
// weak reference to each (eager tasks are only ever in _eager_tasks while they run: no suspended
// one is there). A task belongs to the thread running its loop: the thread state's running loop
// (3.13), or the entry the thread's dict keeps it under (3.12; 3.9-3.11 keep a holder of it there).
//
// The set's table is read by index, a chunk of entries at a time, each chunk with the set's header
// read again: a table replaced (the set grew or shrank) ends the read, and the caller starts over.
// An entry that is empty, a dummy, not a weak reference, or one whose object is gone is skipped.
//
// Safety contract: runs on the sampler thread only, without the GIL; every read goes through the
// sampler's SafeReader; nothing is allocated after construction.
#pragma once

#include <cstdint>
#include <vector>

#include "layout.h"
#include "safe_read.h"

namespace spprof {

constexpr uint64_t kSetChunk = 128;         // entries of the table read at once: a tick's worth
constexpr size_t kThreadDictEntries = 128;  // of a thread's dict (3.12) looked through for its loop

class TaskSets {
public:
    TaskSets(const spprof_layout& layout, SafeReader& reader);
    bool enabled() const { return L.scheduled_tasks != 0; }
    // The loop the thread at `ts_addr` runs; 0 when it runs none (or that could not be read).
    uint64_t running_loop(uint64_t ts_addr);
    // Reads on from table index `index` of the table at `table` (0: the set's table now, which
    // table() then gives). False when the set cannot be read or its table is not that one.
    bool begin(uint64_t index, uint64_t table);
    uint64_t table() const { return table_; }
    // The object of the next live entry at or after the index, and the index after it. False at
    // the table's end, or when a read failed or the table was replaced (then torn() is true).
    bool next(uint64_t& obj, uint64_t& index_after);
    bool torn() const { return torn_; }

private:
    bool read_header(uint64_t& table, uint64_t& mask);
    bool read_chunk();

    const spprof_layout& L;
    SafeReader& reader_;
    uint64_t table_ = 0, mask_ = 0, index_ = 0;
    uint64_t chunk_at_ = 0, chunk_n_ = 0, chunk_i_ = 0;  // the chunk's first index, its size, the next in it
    bool torn_ = false;
    std::vector<uint8_t> entries_, refs_, dict_;
    std::vector<uint64_t> objs_;  // the chunk's live objects' addresses, by entry; 0: none
    std::vector<struct iovec> local_, remote_;
    int32_t pid_;  // the process's, which a 3.11 loop holder must name
};

}  // namespace spprof
