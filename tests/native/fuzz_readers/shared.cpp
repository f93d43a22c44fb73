#include "fuzz.h"

#include <climits>
#include <cstring>

#include "asyncio_tasks.h"
#include "bytes.h"

namespace fuzz {

spprof_layout L;
spprof::SafeReader R;
std::atomic<uint64_t> g_heartbeat{0};
std::atomic<const char*> g_target{"setup"};

std::vector<RealTable> g_tables;
std::vector<RealStr> g_strs;
std::vector<std::vector<uint8_t>> g_bytes_objs;
std::vector<uint64_t> g_codes;
std::vector<uint64_t> g_str_addrs, g_bytes_addrs;
std::vector<uint64_t> g_real_frames;
std::vector<RealThread> g_threads;
std::vector<uint64_t> g_bad;
void* g_guard_arena = nullptr;
size_t g_page = 4096;

bool valid_utf8(const std::string& s) {
    size_t i = 0, n = s.size();
    while (i < n) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (len == 0 || i + len > n) return false;
        for (size_t k = 1; k < len; ++k)
            if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
        i += len;
    }
    return true;
}

uint64_t read_u64(uint64_t addr, bool& ok) {
    uint64_t v = 0;
    ok = R.read(addr, &v, sizeof v);
    return v;
}

void store_u64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }
void store_i32(uint8_t* p, int32_t v) { std::memcpy(p, &v, 4); }

int64_t interesting_int(Rng& r) {
    static const int64_t v[] = {0, 1, -1, -2, 2, 7, 8, 127, 128, 255, 256, 4095, 4096, 4097, 65535,
                                INT_MAX, INT_MIN, (int64_t)INT_MAX + 1, -((int64_t)1 << 40), INT64_MAX, INT64_MIN};
    return r.chance(70) ? v[r.below(sizeof v / sizeof v[0])] : static_cast<int64_t>(r.next() >> r.below(64));
}

uint64_t pool_word(Rng& r, uint64_t base, size_t size, const std::vector<uint64_t>* frames) {
    switch (r.below(14)) {
        case 0: return r.next();
        case 1: return 0;
        case 2: return r.below(300);
        case 3: case 4: return base + 8 * r.below(size / 8);
        case 5: return base + r.below(size);
        case 6: return L.code_type;
        case 7: return L.frame_type;
        case 8: return g_codes.empty() ? 0 : r.pick(g_codes);
        case 9: return g_real_frames.empty() ? 0 : r.pick(g_real_frames);
        case 10: return r.pick(g_bad);
        case 11: return base + size - 8 * r.below(8);
        case 12: return frames && !frames->empty() ? r.pick(*frames) : base;
        default: return static_cast<uint64_t>(interesting_int(r));
    }
}

int task_records(const spprof::FrameRecord* f, int n, std::vector<TaskRecord>& out, int& end, const std::string& what) {
    using namespace spprof;
    out.clear();
    int head = -1;
    for (int k = 0; k < n && head < 0; ++k)
        if (f[k].instr_bytes == kTaskRecord) head = k;
    end = n;
    if (head < 0) return -1;
    int first = -1, p = -1;
    while (head >= 0) {
        const uint64_t len = f[head].fingerprint;
        const int cells = static_cast<int>(task_name_cells(len));
        CHECK(len >= 1 && len <= kTaskNameBytes && cells <= head,
              harness::fmt("%s: a task name of %llu bytes before cell %d", what.c_str(), (unsigned long long)len, head));
        if (first < 0) first = head - cells;
        else CHECK(head - cells == p, what + ": a task record that does not follow the one before it");
        CHECK(f[head].frame == 0 && plausible(f[head].code),
              harness::fmt("%s: a task record's head holds frame %llx, task %llx", what.c_str(),
                           (unsigned long long)f[head].frame, (unsigned long long)f[head].code));
        char text[kTaskNameCells * sizeof(FrameRecord)];
        for (int j = 0; j < cells; ++j) std::memcpy(text + j * sizeof(FrameRecord), &f[head - 1 - j], sizeof(FrameRecord));
        for (size_t b = len; b < cells * sizeof(FrameRecord); ++b)
            CHECK(text[b] == 0, what + ": a task name's last cell is not zero past the name");
        out.push_back({f[head].code, std::string(text, len)});
        CHECK(valid_utf8(out.back().name), what + ": a task name that is not UTF-8");
        p = head + 1;
        head = -1;
        // the next record, if any, starts right here; its head is the first record cell after p
        for (int k = p; k < n && k <= p + kTaskNameCells && head < 0; ++k)
            if (f[k].instr_bytes == kTaskRecord) head = k;
    }
    end = p;
    return first;
}

bool same_task_name(const std::string& got, const std::string& want) {
    return want.compare(0, got.size(), got) == 0 && (got.size() == want.size() || got.size() > spprof::kTaskNameBytes - 4);
}

void WordChurn::start() {
    thread_ = std::thread([this] {
        for (uint64_t k = 0;; ++k) {
            const int p = phase_.load();
            if (p == 2) return;
            if (p == 0) {
                std::unique_lock<std::mutex> lock(mu_);
                ack_.store(0);
                cv_.wait(lock, [this] { return phase_.load() != 0; });
                continue;
            }
            ack_.store(1);
            for (int i = 0; i < n; ++i) __atomic_store_n(words[i], values[i][(k + i) & 3], __ATOMIC_RELAXED);
        }
    });
}

void WordChurn::set(int p) {
    { std::lock_guard<std::mutex> lock(mu_); phase_.store(p); }
    cv_.notify_one();
}

void WordChurn::run() { set(1); while (ack_.load() != 1) {} }
void WordChurn::park() { phase_.store(0); while (ack_.load() != 0) {} }
void WordChurn::quit() { set(2); thread_.join(); }

}  // namespace fuzz
