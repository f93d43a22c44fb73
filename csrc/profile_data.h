// The compact tables of a profile: every symbol, frame and stack stored once, samples referring
// to stacks by id. Built by the collector, read by the exporters and the Python data model.
//
// Safety contract: plain data, owned by one thread at a time (the collector while sampling,
// the Python side after stop()).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace spprof {

struct Symbol {
    std::string name;       // qualified name on 3.11+, the code's name before
    std::string filename;
    int firstlineno = 0;
};

// The file name of the frame that stands for an asyncio task (its name is the task's): no code
// object has it, so the Python side tells task frames from the program's by it.
constexpr const char* kTaskFile = "<asyncio task>";

struct FrameEntry {
    uint32_t symbol;
    int32_t line;
};

struct ThreadEntry {
    uint64_t ident;
    uint32_t native_tid;
    std::string name;
};

struct SampleEntry {
    uint64_t t_ns;          // monotonic
    uint64_t weight_ns;
    uint32_t thread;        // index into threads
    uint32_t stack;         // index into stack_offsets
};

struct ProfileData {
    std::vector<Symbol> symbols;
    std::vector<FrameEntry> frames;
    std::vector<uint32_t> stack_frames;     // all stacks, root first, back to back
    std::vector<uint32_t> stack_offsets;    // stack i is [offsets[i], offsets[i+1])
    // Per stack: the address (Python's id()) of its innermost asyncio task, 0 outside any task.
    // Part of a stack's identity, so two tasks of one name keep their samples apart.
    std::vector<uint64_t> stack_tasks;
    std::vector<ThreadEntry> threads;
    std::vector<SampleEntry> samples;

    uint64_t interval_ns = 0;
    bool wall = false;
    uint64_t start_ns = 0, end_ns = 0;      // monotonic
    int64_t start_unix_ns = 0, end_unix_ns = 0;

    // Counters from the sampler and the collector, by name.
    std::vector<std::pair<std::string, uint64_t>> counters;

    ProfileData() { stack_offsets.push_back(0); }
    size_t stack_count() const { return stack_offsets.size() - 1; }
    size_t bytes_held() const;
    // Drops, from the root of every stack, the frames whose symbol is in `root_symbols` (a
    // launcher's frames beneath the program), and the samples of the threads in `threads`.
    // A sample whose stack starts with such frames but never reaches a module's code goes too
    // (the launcher's own work, before or after the program); the dropped threads leave the table,
    // and so do the stacks and frames no sample refers to any more.
    void trim(const std::vector<uint32_t>& root_symbols, const std::vector<uint32_t>& threads);
    // Drops the stacks and frames no sample refers to (the tables then list only what was seen),
    // renumbering the rest in order of first use. trim() ends with it.
    void drop_unused();
};

}  // namespace spprof
