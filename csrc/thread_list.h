// The interpreter's thread states, copied, and which of them held the GIL.
//
// Safety contract: runs on the sampler thread only, without the GIL, and reads interpreter memory
// only through SafeReader; its buffers are sized at construction and grow there, between
// samples, when the process has more threads than they hold.
#pragma once

#include <sys/uio.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "layout.h"
#include "native_ids.h"
#include "safe_read.h"

namespace spprof {

struct ThreadSeen {
    uint64_t tstate;
    uint64_t ident;
    uint32_t tid;           // 0 while the OS thread has not started or is unknown
    uint64_t activity;      // its frame pointers: they change when it calls or returns
    const uint8_t* copy;    // the copied thread state
};

class ThreadList {
public:
    // Room for `initial` thread states, doubled when a walk finds more, up to `bound`.
    ThreadList(const spprof_layout& layout, SafeReader& reader, const NativeIds& ids, size_t initial, size_t bound);
    // Copies every thread state of the interpreter. False when the list changed under the walk
    // (a pointer failed a check, or a thread state came twice: one freed and reused as the new
    // head can link the copies into a loop); the caller then skips the tick.
    bool enumerate();
    // Copies thread i's state again, for a walk to retry on fresher data, or for a thread whose
    // copy was left stale. When that fails, the next enumerate() copies every thread state.
    bool refresh(size_t i);
    // Thread i of the current list is quiet: its state is not copied by the next enumerate()s,
    // its copy stays the last one, until wake(i), forget_marks() or a list that changed. Each page
    // copied costs the kernel a page pin, and a server has many waiting threads.
    void leave_stale(size_t i) { mark(i, 1); }
    void wake(size_t i) { mark(i, 0); }
    void forget_marks();
    // Whether thread i's copy was taken by the last enumerate() or a refresh() since.
    bool fresh(size_t i) const { return fresh_epoch_[i] == epoch_copy_; }
    // The positions the last enumerate() copied when it did not copy them all (copied_all()),
    // ascending: the threads not marked quiet.
    bool copied_all() const { return copied_all_; }
    const std::vector<uint32_t>& copied() const { return awake_; }
    size_t copied_count() const { return copied_all_ ? count_ : awake_.size(); }
    // The last enumerate() found the list as before: every thread at its position of the last one.
    bool positions_kept() const { return kept_; }
    // The position of a thread state in the current list, or size() when it is not in it.
    size_t position(uint64_t tstate) const;
    size_t size() const { return count_; }
    const ThreadSeen& operator[](size_t i) const { return seen_[i]; }
    // The last enumerate() stopped at `bound` thread states: the oldest threads were left out.
    bool overflowed() const { return overflowed_; }
    size_t capacity() const { return max_; }
    // The thread state that held the GIL when the list was copied, 0 when it was free or not read.
    // That thread was running Python code, not waiting in a system call.
    uint64_t gil_holder() const { return gil_holder_; }
    // The GIL's count of changes of holder and its last holder, as the last enumerate() copied
    // them; false when it did not copy them. Between two copies with the same count, no thread
    // but that last holder can have run Python code, so no other thread's frames changed.
    bool gil_switches(uint64_t& count, uint64_t& last_holder) const {
        count = gil_switches_;
        last_holder = gil_last_;
        return gil_read_;
    }

private:
    // Even with marks, every thread state is copied this often: a thread that exits between
    // two uncopied neighbours is noticed then, and its stale entry dropped. Unless the GIL has
    // had the same holder since the last such copy (its count of holder changes and its last
    // holder unchanged): then no other thread ran Python code, and none could unlink its own
    // state or move its frames.
    static constexpr unsigned kCopyAllEvery = 16;

    void mark(size_t i, uint8_t quiet) {
        if (i < count_ && quiet_[i] != quiet) {
            quiet_[i] = quiet;
            awake_dirty_ = true;
        }
    }
    bool copy_all_due();
    void next_epoch();  // a new copy: fresh() is false for every position until it is copied
    bool enumerate_as_before();
    void read_gil();  // from gil_, after a copy
    void record(size_t i, uint64_t ts);
    void grow();
    // Thread states of this walk, to catch one seen twice: open addressing, cleared by epoch.
    bool first_visit(uint64_t ts);
    void forget_visits();

    const spprof_layout& L;
    SafeReader& reader_;
    const NativeIds& ids_;
    size_t max_;
    const size_t bound_;
    std::vector<uint8_t> copies_;
    std::vector<uint8_t> gil_;
    uint64_t gil_holder_ = 0, gil_switches_ = 0, gil_last_ = 0;
    bool gil_read_ = false;
    std::vector<ThreadSeen> seen_;
    std::vector<uint8_t> quiet_;
    std::vector<uint32_t> fresh_epoch_;  // == epoch_copy_: copied by the last enumerate() or refreshed since
    uint32_t epoch_copy_ = 1;
    std::vector<uint32_t> awake_;        // positions not quiet, ascending, rebuilt when a mark changed
    bool awake_dirty_ = true, copied_all_ = true, kept_ = false;
    unsigned since_all_ = 0;
    bool force_all_ = false;             // a refresh failed: that copy is torn
    // The GIL as read before the last copy of every state (valid when read then).
    bool all_gil_known_ = false;
    uint64_t all_switches_ = 0, all_last_ = 0;
    std::vector<struct iovec> iov_local_, iov_remote_;
    size_t count_ = 0;
    bool overflowed_ = false;
    std::vector<uint64_t> visited_;
    std::vector<uint32_t> visited_epoch_;
    uint32_t epoch_ = 0;
};

}  // namespace spprof
