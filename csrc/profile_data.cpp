#include "profile_data.h"

#include <algorithm>

namespace spprof {

size_t ProfileData::bytes_held() const {
    size_t n = samples.capacity() * sizeof(SampleEntry) + frames.capacity() * sizeof(FrameEntry) +
               (stack_frames.capacity() + stack_offsets.capacity()) * sizeof(uint32_t) +
               stack_tasks.capacity() * sizeof(uint64_t) +
               threads.capacity() * sizeof(ThreadEntry);
    for (const auto& s : symbols) n += sizeof(Symbol) + s.name.capacity() + s.filename.capacity();
    return n;
}

void ProfileData::trim(const std::vector<uint32_t>& root_symbols, const std::vector<uint32_t>& drop_threads) {
    auto is_root = [&](uint32_t frame) {
        return std::find(root_symbols.begin(), root_symbols.end(), frames[frame].symbol) != root_symbols.end();
    };
    std::vector<uint32_t> new_frames, new_offsets{0};
    std::vector<bool> emptied(stack_count(), false);
    for (size_t i = 0; i < stack_count(); ++i) {
        uint32_t a = stack_offsets[i], b = stack_offsets[i + 1];
        uint32_t k = a;
        while (k < b && is_root(stack_frames[k])) ++k;
        // Beneath a launcher the program starts at module code (exec of the script, runpy's
        // module): a stack that never reaches one is the launcher's own work (reading the
        // script, waiting for the program's threads at its end), not the program's.
        bool reaches_module = false;
        for (uint32_t j = k; j < b && !reaches_module; ++j)
            reaches_module = symbols[frames[stack_frames[j]].symbol].name == "<module>";
        emptied[i] = k > a && !reaches_module;
        new_frames.insert(new_frames.end(), stack_frames.begin() + k, stack_frames.begin() + b);
        new_offsets.push_back(static_cast<uint32_t>(new_frames.size()));
    }
    stack_frames.swap(new_frames);
    stack_offsets.swap(new_offsets);
    constexpr uint32_t kGone = UINT32_MAX;
    std::vector<uint32_t> renumber(threads.size());
    std::vector<ThreadEntry> kept;
    for (uint32_t i = 0; i < threads.size(); ++i) {
        bool drop = std::find(drop_threads.begin(), drop_threads.end(), i) != drop_threads.end();
        renumber[i] = drop ? kGone : static_cast<uint32_t>(kept.size());
        if (!drop) kept.push_back(std::move(threads[i]));
    }
    threads.swap(kept);
    samples.erase(std::remove_if(samples.begin(), samples.end(), [&](SampleEntry& s) {
        s.thread = renumber[s.thread];
        return emptied[s.stack] || s.thread == kGone;
    }), samples.end());
    drop_unused();
}

void ProfileData::drop_unused() {
    constexpr uint32_t kGone = UINT32_MAX;
    std::vector<uint32_t> stack_id(stack_count(), kGone), frame_id(frames.size(), kGone);
    std::vector<uint32_t> new_frames, new_offsets{0};
    std::vector<uint64_t> new_tasks;
    for (SampleEntry& s : samples) {
        uint32_t& id = stack_id[s.stack];
        if (id == kGone) {
            id = static_cast<uint32_t>(new_offsets.size() - 1);
            new_frames.insert(new_frames.end(), stack_frames.begin() + stack_offsets[s.stack],
                              stack_frames.begin() + stack_offsets[s.stack + 1]);
            new_offsets.push_back(static_cast<uint32_t>(new_frames.size()));
            new_tasks.push_back(stack_tasks[s.stack]);
        }
        s.stack = id;
    }
    std::vector<FrameEntry> kept;
    for (uint32_t& f : new_frames) {
        if (frame_id[f] == kGone) {
            frame_id[f] = static_cast<uint32_t>(kept.size());
            kept.push_back(frames[f]);
        }
        f = frame_id[f];
    }
    frames.swap(kept);
    stack_frames.swap(new_frames);
    stack_offsets.swap(new_offsets);
    stack_tasks.swap(new_tasks);
}

}  // namespace spprof
