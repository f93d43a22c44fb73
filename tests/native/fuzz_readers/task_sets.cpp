// Target: task_sets, the reader of 3.9's to 3.13's set of tasks and of the loop a thread runs.
// Each input is an image laid out as CPython keeps them (the set's header, its table of empty
// slots, dummies and weak references to tasks or to None; a thread state with its running loop,
// or with its dict (of str keys, 3.11+) holding the loop, or 3.9's to 3.11's holder of it, under
// _asyncio's key), then mutated. A holder set by another process (a forked child's parent), or holding None,
// names no loop.
// Unmutated, the reader must give every live weak reference's object once, in table order, from
// any index it is asked to start at, refuse another table, and find the loop; mutated, it may give
// anything, but each index it gives is past the last and the read ends.
#include "fuzz.h"

#include <unistd.h>

#include <cstring>
#include <vector>

#include "bytes.h"
#include "task_sets.h"

using namespace spprof;
using harness::fmt;

namespace fuzz {

namespace {
constexpr size_t kImage = 16384;
constexpr size_t kSet = 0, kTable = 512, kRefs = 1536, kNone = 2560, kDummy = 2624, kTs = 4096,
                 kDict = 8192, kKeys = 8704, kTasks = 12288;
constexpr uint64_t kMaxSlots = 32;
constexpr int kMaxNext = 4096;  // objects one mutated read may give before the target stops it
}  // namespace

void fuzz_task_sets(Rng& rng, uint64_t deadline, uint64_t max_iter, TargetStats& st) {
    if (L.scheduled_tasks == 0) {  // 3.14 lists its tasks per thread
        st.notes["no set of tasks on this version"] = 1;
        return;
    }
    CHECK(L.set_entry_size * kMaxSlots <= kRefs - kTable && L.ts_running_loop + 8 <= kDict - kTs &&
          L.ts_dict + 8 <= kDict - kTs && L.dk_indices + 8 + 8 * L.dk_entry_size <= kTasks - kKeys,
          "the image is too small for this layout");
    std::vector<uint64_t> image(kImage / 8 + 8);
    uint8_t* img = reinterpret_cast<uint8_t*>(image.data());
    const uint64_t base = reinterpret_cast<uint64_t>(img);
    spprof_layout image_layout = L;  // the set is the image's
    image_layout.scheduled_tasks = base + kSet;
    TaskSets sets(image_layout, R);
    uint64_t i = 0, unmutated = 0, given = 0, loops_found = 0;
    for (; i < max_iter && (i & 15 || harness::now_ns() < deadline); ++i) {
        g_heartbeat.fetch_add(1, std::memory_order_relaxed);
        std::memset(img, 0, kImage);
        // the set: a table of 8, 16 or 32 slots
        const uint64_t slots = 8ull << rng.below(3), table = base + kTable;
        store_u64(img + kSet + L.set_mask, slots - 1);
        store_u64(img + kSet + L.set_table, table);
        store_u64(img + kDummy + L.ob_type, L.unicode_type);
        store_u64(img + kNone + L.ob_type, L.unicode_type);
        std::vector<uint64_t> want;
        for (uint64_t s = 0; s < slots; ++s) {
            uint8_t* e = img + kTable + s * L.set_entry_size;
            const size_t kind = rng.below(4);  // empty, dummy, a live task's reference, a dead one's
            if (kind == 0) continue;
            if (kind == 1) {
                store_u64(e + L.set_entry_key, base + kDummy);
                continue;
            }
            const uint64_t ref = base + kRefs + s * 32, obj = kind == 2 ? base + kTasks + s * 64 : base + kNone;
            store_u64(e + L.set_entry_key, ref);
            store_u64(img + (ref - base) + L.ob_type, L.weakref_type);
            store_u64(img + (ref - base) + L.wr_object, obj);
            want.push_back(obj);
        }
        // the thread's running loop: in its state (3.13), or in its dict (3.12), in a holder (3.9-3.11)
        const uint64_t ts = base + kTs;
        uint64_t loop = base + kTasks + 2048, value = loop;
        if (L.loop_holder_type != 0) {
            const uint64_t holder = base + kTasks + 3072;
            value = holder;
            const size_t kind = rng.below(10);  // 8 in 10 the loop; else set by another process, or None
            store_u64(img + (holder - base) + L.ob_type, L.loop_holder_type);
            store_u64(img + (holder - base) + L.holder_loop, kind == 9 ? L.none_object : loop);
            store_i32(img + (holder - base) + L.holder_pid, static_cast<int32_t>(getpid()) + (kind == 8 ? 1 : 0));
            if (kind >= 8) loop = 0;
        }
        if (L.ts_running_loop != 0) {
            store_u64(img + kTs + L.ts_running_loop, loop);
        } else {
            store_u64(img + kTs + L.ts_dict, base + kDict);
            store_u64(img + kDict + L.dict_used, 3);
            store_u64(img + kDict + L.dict_keys, base + kKeys);
            const bool general = L.dk_unicode_entry_size == 0 || rng.chance(30);  // 3.9/3.10: all general
            if (L.dk_size_log2) {
                img[kKeys + L.dk_size] = 3;
                img[kKeys + L.dk_log2_index_bytes] = 3;
                img[kKeys + L.dk_kind] = general ? 0 : 1;
            } else {
                store_u64(img + kKeys + L.dk_size, 8);  // 8 slots, a byte of index each
            }
            const size_t n = 1 + rng.below(8), at = rng.below(n);
            store_u64(img + kKeys + L.dk_nentries, n);
            const uint32_t size = general ? L.dk_entry_size : L.dk_unicode_entry_size;
            for (size_t k = 0; k < n; ++k) {
                uint8_t* e = img + kKeys + L.dk_indices + 8 + k * size;
                store_u64(e + (general ? L.dk_entry_key : L.dk_unicode_key), k == at ? L.running_loop_key : base + kDummy);
                store_u64(e + (general ? L.dk_entry_value : L.dk_unicode_value), k == at ? value : base + kNone);
            }
        }
        const int muts = rng.chance(30) ? 0 : static_cast<int>(1 + rng.below(6));
        for (int m = 0; m < muts; ++m) {
            const size_t at = rng.below(kTasks / 8) * 8;
            if (rng.chance(50)) store_u64(img + at, pool_word(rng, base, kImage));
            else img[rng.below(kTasks)] ^= static_cast<uint8_t>(1u << rng.below(8));
        }
        const uint64_t found = sets.running_loop(ts);
        const uint64_t start = rng.chance(50) ? 0 : rng.below(slots + 1);
        std::vector<uint64_t> got;
        uint64_t last = start, obj = 0, after = 0;
        if (sets.begin(start, 0)) {
            for (int k = 0; k < kMaxNext && sets.next(obj, after); ++k) {
                CHECK(after > last, fmt("index %llu given after %llu", (unsigned long long)after, (unsigned long long)last));
                last = after;
                got.push_back(obj);
            }
        }
        given += got.size();
        if (muts != 0) continue;
        ++unmutated;
        CHECK(found == loop, "the thread's running loop was not found");
        ++loops_found;
        std::vector<uint64_t> expect;
        for (uint64_t s = start; s < slots; ++s) {
            const uint64_t key = load_u64(img + kTable + s * L.set_entry_size + L.set_entry_key);
            if (key != 0 && key != base + kDummy) expect.push_back(load_u64(img + (key - base) + L.wr_object));
        }
        CHECK(got == expect, fmt("%zu objects given, %zu in the table from index %llu", got.size(), expect.size(),
                                 (unsigned long long)start));
        CHECK(!sets.torn(), "an unmutated set read as torn");
        CHECK(!sets.begin(0, table + 8) && sets.torn(), "a pass went on in a table that is not the set's");
    }
    st.iterations = i;
    st.notes["unmutated, every live reference given in order"] = unmutated;
    st.notes["unmutated, the loop found"] = loops_found;
    st.notes["objects given"] = given;
}

}  // namespace fuzz
