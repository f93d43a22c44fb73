// What the targets of fuzz_readers share: the inputs taken from the live interpreter (filled by
// collect_inputs() in fuzz_readers.cpp), the generators of pointer-like words, and one entry
// point per reader target, each in its own file here.
#pragma once

#include "harness.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "layout.h"
#include "safe_read.h"
#include "sample_queue.h"

namespace fuzz {

using harness::Rng;

extern spprof_layout L;
extern spprof::SafeReader R;
extern std::atomic<uint64_t> g_heartbeat;  // one more per iteration: the watchdog sees progress
extern std::atomic<const char*> g_target;

struct RealTable { PyObject* code; std::vector<uint8_t> bytes; int firstlineno; int code_len; };
struct RealStr { PyObject* obj; std::vector<uint8_t> bytes; bool is_str; bool compact; std::string expect; };
struct RealThread { uint64_t tstate; uint64_t ident; };

extern std::vector<RealTable> g_tables;
extern std::vector<RealStr> g_strs;
extern std::vector<std::vector<uint8_t>> g_bytes_objs;  // copies of real bytes objects (header + data)
extern std::vector<uint64_t> g_codes;        // addresses of real code objects (kept alive by __main__.codes)
extern std::vector<uint64_t> g_str_addrs, g_bytes_addrs;
extern std::vector<uint64_t> g_real_frames;  // frames of the blocked threads
extern std::vector<RealThread> g_threads;
extern std::vector<uint64_t> g_bad;          // addresses that cannot be read, or wrap around
extern void* g_guard_arena;                  // kArenaPages read-write pages, then a PROT_NONE page, then an unmapped one
constexpr size_t kArenaPages = 16;
extern size_t g_page;

struct TargetStats { const char* name; uint64_t iterations = 0; double seconds = 0; std::map<std::string, uint64_t> notes; };

bool valid_utf8(const std::string& s);
uint64_t read_u64(uint64_t addr, bool& ok);
void store_u64(uint8_t* p, uint64_t v);
void store_i32(uint8_t* p, int32_t v);
int64_t interesting_int(Rng& r);
// A word that looks like what a thread state or a frame holds, or like garbage.
uint64_t pool_word(Rng& r, uint64_t base, size_t size, const std::vector<uint64_t>* frames = nullptr);
// A thread's chain as CPython links it, read the simple way (frames.cpp).
std::vector<uint64_t> real_chain(const uint8_t* ts);

// Rewrites up to 4 words of an image while a reader copies it, as a live thread does: at step k
// word i takes values[i][(k + i) & 3]. Parked, it sleeps: the machine's other core is someone else's.
struct WordChurn {
    uint64_t* words[4] = {};
    uint64_t values[4][4] = {};
    int n = 0;
    void start();
    void run();   // returns once it rewrites
    void park();  // returns once it stopped
    void quit();
private:
    void set(int p);
    std::atomic<int> phase_{0};  // 0 parked, 1 running, 2 quit
    std::atomic<int> ack_{0};
    std::mutex mu_;
    std::condition_variable cv_;
    std::thread thread_;
};

// A task record of a sample (asyncio_tasks.h): the task's address and its name.
struct TaskRecord { uint64_t task; std::string name; };
// The task records of the `n` cells at `f` from the first record head on, each checked well formed
// (a name of 1 to kTaskNameBytes UTF-8 bytes in the cells before its head, zero past the name, the
// head's frame 0 and its task plausible, each record right after the one before). Returns the cell
// where the first record's name starts, -1 when there is no record; `end` is the cell after the last.
int task_records(const spprof::FrameRecord* f, int n, std::vector<TaskRecord>& out, int& end, const std::string& what);
// Whether a task name as sampled is `want`: a long name is cut at a character.
bool same_task_name(const std::string& got, const std::string& want);

// The targets: each runs until `deadline` (monotonic ns) or `max_iter` iterations.
void fuzz_linetable(Rng& rng, uint64_t deadline, uint64_t max_iter, TargetStats& st);
void fuzz_decode_str(Rng& rng, uint64_t deadline, uint64_t max_iter, TargetStats& st);
void fuzz_frames(Rng& rng, uint64_t deadline, uint64_t max_iter, TargetStats& st);
void fuzz_threads(Rng& rng, uint64_t deadline, uint64_t max_iter, TargetStats& st);
void fuzz_symbols(Rng& rng, uint64_t deadline, uint64_t max_iter, TargetStats& st);
void fuzz_reads(Rng& rng, uint64_t deadline, uint64_t max_iter, TargetStats& st);
void fuzz_asyncio_tasks(Rng& rng, uint64_t deadline, uint64_t max_iter, TargetStats& st);
void fuzz_task_sets(Rng& rng, uint64_t deadline, uint64_t max_iter, TargetStats& st);
void fuzz_waiting_tasks(Rng& rng, uint64_t deadline, uint64_t max_iter, TargetStats& st);

}  // namespace fuzz
