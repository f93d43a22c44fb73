// Target: asyncio_tasks, the running-task reader. Each input is an image laid out as the
// interpreter's records of a running task are (3.9-3.13: the running-task dict, its keys, a Task
// or an instance of a subclass, its coroutine, its name; 3.14: a thread state's running task), then
// mutated; the reader runs
// against it with a walk's frames, one of which is the coroutine's frame or not. Unmutated, it
// must name the task with the name's characters; mutated, it may name it or not, but what it
// writes must be a well-formed task record around the frames it was given, in their order.
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
    AsyncioTasks tasks(image_layout, R);
    std::vector<FrameRecord> frames(40 + kTaskCells), given;
    uint64_t i = 0, named = 0, unmutated_named = 0, unmutated = 0;
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
        // innermost frames .. the coroutine's, the name's cells, the head, the callers
        const int cells = out - depth - 1;
        CHECK(cells >= 1 && cells <= kTaskNameCells, fmt("a task record of %d name cells", cells));
        int head = -1;
        for (int k = 0; k < out; ++k) if (frames[static_cast<size_t>(k)].instr_bytes == kTaskRecord) { head = k; break; }
        CHECK(head >= cells + 1, "no task record head after the coroutine's frame and the name");
        const size_t len = frames[static_cast<size_t>(head)].fingerprint;
        CHECK(len >= 1 && len <= kTaskNameBytes && (len + sizeof(FrameRecord) - 1) / sizeof(FrameRecord) == static_cast<size_t>(cells),
              fmt("a task name of %zu bytes in %d cells", len, cells));
        const int at = head - cells - 1;
        CHECK(std::memcmp(frames.data(), given.data(), static_cast<size_t>(at + 1) * sizeof(FrameRecord)) == 0 &&
              std::memcmp(frames.data() + head + 1, given.data() + at + 1, static_cast<size_t>(depth - at - 1) * sizeof(FrameRecord)) == 0,
              "the frames around a task record are not the frames given");
        char text[kTaskNameBytes];
        for (int j = 0; j < cells; ++j)
            std::memcpy(text + j * sizeof(FrameRecord), &frames[static_cast<size_t>(head - 1 - j)],
                        std::min(sizeof(FrameRecord), len - j * sizeof(FrameRecord)));
        const std::string got(text, len);
        CHECK(valid_utf8(got), "a task name that is not UTF-8");
        if (muts == 0) {
            ++unmutated_named;
            const std::string want = long_name ? "Task-42" : name.expect;
            CHECK(want.compare(0, got.size(), got) == 0 && (got.size() == want.size() || got.size() > kTaskNameBytes - 4),
                  fmt("task named '%s', not '%s'", got.c_str(), want.c_str()));
        }
    }
    st.iterations = i;
    st.notes["named"] = named;
    st.notes["unmutated with the frame, all named"] = unmutated;
    st.notes["named unmutated, as CPython has the name"] = unmutated_named;
    st.notes["rejected"] = tasks.rejected();
}

}  // namespace fuzz
