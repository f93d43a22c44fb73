// Target: asyncio_tasks, the running-task reader. Each input is an image laid out as the
// interpreter's records of a running task are (3.9-3.13: the running-task dict, its keys, a Task
// or an instance of a subclass, its coroutine, its name; 3.14: a thread state's running task), then
// mutated; the reader runs
// against it with a walk's frames, one of which is the coroutine's frame or not. Unmutated, it
// must name the task with the name's characters, and the task awaiting it (when the image links
// one) with that task's; mutated, it may name them or not, but what it writes must be well-formed
// task records, one after the other, between the frames it was given, in their order. The
// awaiting link is 3.14's; on other versions the image puts it where the copied Task ends.
#include "fuzz.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "asyncio_tasks.h"
#include "bytes.h"

using namespace spprof;
using harness::fmt;

namespace fuzz {

namespace {
constexpr size_t kImage = 12288;
constexpr size_t kDict = 0, kKeys = 512, kTask = 2048, kCoro = 3072, kName = 4096, kFrame = 5120, kTs = 6144;
constexpr size_t kSubclass = 8192, kSubSubclass = 10240;  // Task's subclasses, made by a task factory
constexpr size_t kParent = 11264;                          // the task awaiting the running one
}  // namespace

void fuzz_asyncio_tasks(Rng& rng, uint64_t deadline, uint64_t max_iter, TargetStats& st) {
    CHECK(L.tasks_model != SPPROF_TASKS_OFF, fmt("asyncio tasks are off: %s", L.tasks_off));
    std::vector<const RealStr*> names;
    for (const RealStr& s : g_strs)
        if (s.is_str && s.compact && PyUnicode_GET_LENGTH(s.obj) > 0 && PyUnicode_GET_LENGTH(s.obj) <= 4096) names.push_back(&s);
    CHECK(!names.empty(), "no str to name a task with");
    std::vector<uint64_t> image((kImage + 63) / 8 + 8);
    uint8_t* img = reinterpret_cast<uint8_t*>(image.data());
    const uint64_t base = reinterpret_cast<uint64_t>(img);
    spprof_layout image_layout = L;  // the running-task dict is the image's
    image_layout.current_tasks = base + kDict;
    if (image_layout.task_awaited_by == 0) image_layout.task_awaited_by = (L.task_copy + 7) & ~7u;
    const uint32_t by_at = image_layout.task_awaited_by;
    CHECK(by_at + 8 <= kCoro - kTask && kParent + std::max(by_at, L.task_copy) + 8 <= kImage, "the image's Task is too small");
    AsyncioTasks tasks(image_layout, R);
    std::vector<FrameRecord> frames(40 + kTaskCells), given;
    uint64_t i = 0, named = 0, unmutated_named = 0, unmutated = 0, parents_named = 0;
    for (; i < max_iter && (i & 15 || harness::now_ns() < deadline); ++i) {
        g_heartbeat.fetch_add(1, std::memory_order_relaxed);
        std::memset(img, 0, kImage);
        const uint64_t task = base + kTask, coro = base + kCoro;
        // the records, well formed
        store_u64(img + kDict + L.dict_used, 1);
        store_u64(img + kDict + L.dict_keys, base + kKeys);
        const size_t entries = 1 + rng.below(3), live = rng.below(entries);
        if (L.dk_size_log2) {
            img[kKeys + L.dk_size] = 3;
            img[kKeys + L.dk_log2_index_bytes] = 3;
        } else {
            store_u64(img + kKeys + L.dk_size, 8);
        }
        store_u64(img + kKeys + L.dk_nentries, entries);
        for (size_t e = 0; e < entries; ++e) {
            uint8_t* entry = img + kKeys + L.dk_indices + 8 + e * L.dk_entry_size;
            store_u64(entry + L.dk_entry_key, e == live || rng.chance(50) ? base + kDict : 0);
            store_u64(entry + L.dk_entry_value, e == live ? task : rng.chance(50) ? base + kTask + 64 : 0);
        }
        store_u64(img + kTs + L.ts_running_task, task);
        // asyncio's Task, a subclass of it, or a subclass of that
        const uint64_t subclass = base + kSubclass, subsub = base + kSubSubclass;
        store_u64(img + kSubclass + L.type_base, L.task_type);
        store_u64(img + kSubSubclass + L.type_base, subclass);
        const size_t kind = rng.below(3);
        store_u64(img + kTask + L.ob_type, kind == 0 ? L.task_type : kind == 1 ? subclass : subsub);
        store_u64(img + kTask + L.task_coro, coro);
        const RealStr& name = *rng.pick(names);
        const bool long_name = L.long_tag != 0 && rng.chance(30);
        store_u64(img + kTask + L.task_name, long_name ? base + kName : reinterpret_cast<uint64_t>(name.obj));
        if (long_name) {
            store_u64(img + kName + L.ob_type, L.long_type);
            store_u64(img + kName + L.long_tag, (1u << 3));  // one digit, positive
            store_i32(img + kName + L.long_digit, 42);
        }
        // the task awaiting it, sometimes; and what awaits that one: nothing, or a loop back
        const bool has_parent = rng.chance(50);
        const RealStr& parent_name = *rng.pick(names);
        if (has_parent) {
            store_u64(img + kTask + by_at, base + kParent);
            store_u64(img + kParent + L.ob_type, L.task_type);
            store_u64(img + kParent + L.task_coro, coro);
            store_u64(img + kParent + L.task_name, reinterpret_cast<uint64_t>(parent_name.obj));
            if (rng.chance(20)) store_u64(img + kParent + by_at, rng.chance(50) ? task : base + kParent);
        }
        store_u64(img + kCoro + L.ob_type, L.coro_type);
        const uint64_t frame = L.coro_frame_inline ? coro + L.coro_frame : base + kFrame;
        if (!L.coro_frame_inline) store_u64(img + kCoro + L.coro_frame, frame);
        // the walk's frames, innermost first; the coroutine's among them, or not
        const int depth = 1 + static_cast<int>(rng.below(40));
        for (int k = 0; k < depth; ++k)
            frames[static_cast<size_t>(k)] = {rng.next(), rng.next(), static_cast<int64_t>(rng.below(1000)), pool_word(rng, base, kImage)};
        if (rng.chance(80)) frames[rng.below(static_cast<size_t>(depth))].frame = frame;
        // then mutations
        const int muts = rng.chance(30) ? 0 : static_cast<int>(1 + rng.below(6));
        for (int m = 0; m < muts; ++m) {
            const size_t at = rng.below(kImage / 8) * 8;
            if (rng.chance(50)) store_u64(img + at, pool_word(rng, base, kImage));
            else img[rng.below(kImage)] ^= static_cast<uint8_t>(1u << rng.below(8));
        }
        given.assign(frames.begin(), frames.begin() + depth);
        tasks.begin_tick();
        const int out = tasks.name_running(base + kTs, frames.data(), depth);
        const bool has_frame = std::any_of(given.begin(), given.end(), [&](const FrameRecord& f) { return f.frame == frame; });
        if (muts == 0 && has_frame) {
            ++unmutated;
            CHECK(out > depth, "an unmutated running task with its coroutine's frame on the stack was not named");
        }
        if (out == depth) {
            CHECK(std::memcmp(frames.data(), given.data(), given.size() * sizeof(FrameRecord)) == 0, "frames changed though no task was named");
            continue;
        }
        ++named;
        // innermost frames .. the coroutine's, then each record (its name's cells, its head), the callers
        std::vector<TaskRecord> got;
        int p = 0;
        const int at = task_records(frames.data(), out, got, p, "the running task") - 1;
        CHECK(at >= 0 && static_cast<int>(got.size()) <= 1 + kTaskParents, fmt("%zu task records", got.size()));
        CHECK(out - p == depth - at - 1, "the records are not all between the coroutine's frame and its callers");
        CHECK(std::memcmp(frames.data(), given.data(), static_cast<size_t>(at + 1) * sizeof(FrameRecord)) == 0 &&
              std::memcmp(frames.data() + p, given.data() + at + 1, static_cast<size_t>(depth - at - 1) * sizeof(FrameRecord)) == 0,
              "the frames around the task records are not the frames given");
        if (muts == 0) {
            ++unmutated_named;
            const std::string want = long_name ? "Task-42" : name.expect;
            CHECK(same_task_name(got[0].name, want), fmt("task named '%s', not '%s'", got[0].name.c_str(), want.c_str()));
            CHECK(!has_parent || (got.size() >= 2 && same_task_name(got[1].name, parent_name.expect)),
                  fmt("the awaiting task named '%s', not '%s'", got.size() >= 2 ? got[1].name.c_str() : "", parent_name.expect.c_str()));
            CHECK(has_parent || got.size() == 1, "an awaiting task named where the image has none");
            if (has_parent) ++parents_named;
        }
    }
    st.iterations = i;
    st.notes["named"] = named;
    st.notes["unmutated with the frame, all named"] = unmutated;
    st.notes["named unmutated, as CPython has the name"] = unmutated_named;
    st.notes["rejected"] = tasks.rejected();
    st.notes["unmutated awaiting tasks named"] = parents_named;
}

}  // namespace fuzz
