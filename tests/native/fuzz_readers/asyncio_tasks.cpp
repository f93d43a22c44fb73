// Target: asyncio_tasks, the running-task reader. Each input is an image laid out as the
// interpreter's records of a running task are (3.9-3.13: the running-task dict, its keys, a Task
// or an instance of a subclass, its coroutine, its name; 3.14: a thread state's running task), then
// mutated; the reader runs
// against it with a walk's frames, one of which is the coroutine's frame or not. Unmutated, it
// must name the task with the name's characters, and the task awaiting it (when the image links
// one) with that task's; mutated, it may name them or not, but what it writes must be well-formed
// task records, one after the other, between the frames it was given, in their order. The
// awaiting link is 3.14's; on other versions the image puts it where the copied Task ends, or,
// every other input, links the awaiting task as 3.9-3.13 do: through the running task's first
// callback, the awaiter's wakeup itself or a closure's cell (a partial's args) holding a future
// whose first callback, or one in its list, is the wakeup, the awaiter's fut_waiter pointing
// back.
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
constexpr size_t kImage = 16384;
constexpr size_t kDict = 0, kKeys = 512, kTask = 2048, kCoro = 3072, kName = 4096, kFrame = 5120, kTs = 6144;
constexpr size_t kSubclass = 8192, kSubSubclass = 10240;  // Task's subclasses, made by a task factory
constexpr size_t kParent = 11264;                          // the task awaiting the running one
// 3.9-3.13: the objects between a task and its awaiter
constexpr size_t kWake = 12288, kOther = 12416, kFunc = 12544, kTuple = 12800, kCells = 13056, kFut = 13312,
                 kList = 13568, kListItems = 13824, kPairs = 14080, kPartial = 14336, kMethod = 14592,
                 kGroup = 14848, kValues = 15104;

// Links `task` to `parent` the way 3.9-3.13 leave it, in one of the shapes asyncio makes.
void link_by_callbacks(Rng& rng, uint8_t* img, uint64_t base, uint64_t task, uint8_t* task_at, uint64_t parent,
                       uint8_t* parent_at) {
    uint8_t* wake = img + kWake;
    store_u64(wake + L.ob_type, L.wakeup_type);
    if (L.wakeup_tag_off != 0) store_u64(wake + L.wakeup_tag_off, L.wakeup_tag);
    store_u64(wake + L.wakeup_task, parent);
    const size_t shape = rng.below(L.values_kind != 0 ? 4 : L.partial_type != 0 ? 3 : 2);
    if (shape == 0) {  // await task
        store_u64(task_at + L.fut_callback0, base + kWake);
        store_u64(parent_at + L.task_fut_waiter, task);
        return;
    }
    // what holds the future the awaiter waits on
    if (shape == 3) {  // a TaskGroup's bound method, the future among the group's values
        store_u64(img + kMethod + L.ob_type, L.method_type);
        store_u64(img + kMethod + L.method_self, base + kGroup);
        uint8_t* values = img + kValues;
        if (L.values_kind == 3) {
            values = img + kGroup + L.values_at;
            img[kGroup + L.values_valid_at] = 1;
        } else store_u64(img + kGroup + L.values_at, L.values_kind == 2 ? base + kValues - 1 : base + kValues);
        const size_t which = rng.below(10);
        for (size_t j = 0; j < 10; ++j)
            store_u64(values + 8 * j, j == which ? base + kFut : rng.chance(50) ? 0 : base + kOther);
        store_u64(task_at + L.fut_callback0, base + kMethod);
    } else {  // a gather's, shield's or wait's closure (in cells), or wait_for's partial (its args)
        const size_t items = 1 + rng.below(4), which = rng.below(items);
        store_u64(img + kTuple + L.ob_type, L.tuple_type);
        store_u64(img + kTuple + L.ob_size, items);
        for (size_t j = 0; j < items; ++j) {
            const uint64_t held = j == which ? base + kFut : rng.chance(50) ? 0 : base + kOther;
            if (shape == 1) {
                uint8_t* cell = img + kCells + 32 * j;
                store_u64(cell + L.ob_type, L.cell_type);
                store_u64(cell + L.cell_ref, held);
                store_u64(img + kTuple + L.tuple_items + 8 * j, base + kCells + 32 * j);
            } else {
                store_u64(img + kTuple + L.tuple_items + 8 * j, held);
            }
        }
        const size_t via = shape == 1 ? kFunc : kPartial;
        store_u64(img + via + L.ob_type, shape == 1 ? L.function_type : L.partial_type);
        store_u64(img + via + (shape == 1 ? L.func_closure : L.partial_args), base + kTuple);
        store_u64(task_at + L.fut_callback0, base + via);
    }
    store_u64(img + kOther + L.ob_type, L.function_type);
    store_u64(img + kFut + L.ob_type, L.future_type);
    if (L.fut_callbacks == 0 || rng.chance(50)) {
        store_u64(img + kFut + L.fut_callback0, base + kWake);
    } else {  // a shield's: its own callback first, the wakeup in the list
        const size_t n = 1 + rng.below(4), at = rng.below(n);
        store_u64(img + kFut + L.fut_callback0, base + kOther);
        store_u64(img + kFut + L.fut_callbacks, base + kList);
        store_u64(img + kList + L.ob_type, L.list_type);
        store_u64(img + kList + L.ob_size, n);
        store_u64(img + kList + L.list_items, base + kListItems);
        for (size_t j = 0; j < n; ++j) {
            uint8_t* pair = img + kPairs + 32 * j;
            store_u64(pair + L.ob_type, L.tuple_type);
            store_u64(pair + L.ob_size, 2);
            store_u64(pair + L.tuple_items, j == at ? base + kWake : base + kOther);
            store_u64(img + kListItems + 8 * j, base + kPairs + 32 * j);
        }
    }
    store_u64(parent_at + L.task_fut_waiter, base + kFut);
}
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
    image_layout.task_copy = std::max(image_layout.task_copy, by_at + 8);  // the link is read with the Task
    CHECK(by_at + 8 <= kCoro - kTask && kParent + std::max(by_at, L.task_copy) + 8 <= kWake, "the image's Task is too small");
    AsyncioTasks by_link(image_layout, R);
    // 3.9-3.13 as they are: no awaited_by, the callbacks followed instead
    spprof_layout callbacks_layout = image_layout;
    callbacks_layout.task_awaited_by = 0;
    AsyncioTasks by_callbacks(callbacks_layout, R);
    const bool callbacks_too = L.task_awaited_by == 0 && L.fut_callback0 != 0;
    CHECK(!callbacks_too || (kTask + std::max({L.fut_callback0, L.fut_callbacks, L.task_fut_waiter}) + 8 <= kCoro &&
                             L.values_at > -256 && L.values_at + 128 < static_cast<int32_t>(kValues - kGroup) &&
                             L.wakeup_task + 8 <= kOther - kWake && L.tuple_items + 32 <= kCells - kTuple),
          "the image's objects are too small");
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
        const bool callbacks = callbacks_too && (i & 1);
        AsyncioTasks& tasks = callbacks ? by_callbacks : by_link;
        const RealStr& parent_name = *rng.pick(names);
        if (has_parent) {
            store_u64(img + kParent + L.ob_type, L.task_type);
            store_u64(img + kParent + L.task_coro, coro);
            store_u64(img + kParent + L.task_name, reinterpret_cast<uint64_t>(parent_name.obj));
            if (callbacks) {
                link_by_callbacks(rng, img, base, task, img + kTask, base + kParent, img + kParent);
            } else {
                store_u64(img + kTask + by_at, base + kParent);
                if (rng.chance(20)) store_u64(img + kParent + by_at, rng.chance(50) ? task : base + kParent);
            }
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
    st.notes["rejected"] = by_link.rejected() + by_callbacks.rejected();
    st.notes["awaiting tasks named through callbacks"] = by_callbacks.parents_named();
    st.notes["unmutated awaiting tasks named"] = parents_named;
}

}  // namespace fuzz
