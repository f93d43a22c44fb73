// Target: SafeReader's own batching.
#include "fuzz.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <memory>
#include <set>
#include <thread>

#include "code_identity.h"
#include "frame_capture.h"
#include "linetable.h"
#include "native_ids.h"
#include "profile_data.h"
#include "pyobjects.h"
#include "symbols.h"
#include "thread_list.h"

using namespace spprof;
using harness::fmt;

namespace fuzz {

// SafeReader's own batching: ranges merged into spans and split after must give exactly what one
// read per range gives. Up to 64 ranges of 1 byte to 3 KiB, in address order or not, repeated or
// not, near a hole among readable pages, the guard page (PROT_NONE: unreadable through
// process_vm_readv, readable through /proc/self/mem) and the unmapped page after it. Oracle: a range is readable when it lies in the
// read-write pages (or, for /proc/self/mem, before the unmapped page); readv() must succeed exactly
// when all are and copy each byte right, and readv_prefix() must copy every range before the first
// unreadable one and stop inside that one.
void fuzz_reads(Rng& rng, uint64_t deadline, uint64_t max_iter, TargetStats& st) {
    const uint64_t arena = reinterpret_cast<uint64_t>(g_guard_arena);
    const uint64_t readable_end = arena + (kArenaPages + (R.method() == ReadMethod::ProcMem ? 1 : 0)) * g_page;
    uint8_t* bytes = static_cast<uint8_t*>(g_guard_arena);
    for (size_t o = 0; o < kArenaPages * g_page; ++o) bytes[o] = static_cast<uint8_t>(o * 131 + 7);
    // A hole among readable pages: no merged span may reach across it.
    const uint64_t hole = arena + (kArenaPages - 3) * g_page;
    CHECK(munmap(reinterpret_cast<void*>(hole), g_page) == 0, "munmap");
    constexpr size_t kMax = 64, kLen = 3072;
    std::vector<uint8_t> out(kMax * kLen);
    struct iovec l[kMax], r[kMax];
    uint64_t i = 0, all_ok = 0, all_failed = 0, prefix_short = 0, merged_shapes = 0;
    for (; i < max_iter && (i & 63 || harness::now_ns() < deadline); ++i) {
        g_heartbeat.fetch_add(1, std::memory_order_relaxed);
        const size_t n = 1 + rng.below(kMax);
        // near the end of the arena most of the time, so that ranges meet the guard page
        const uint64_t window = rng.chance(70) ? 3 * g_page : kArenaPages * g_page;
        const uint64_t lo = arena + kArenaPages * g_page - window;
        const bool sorted = rng.chance(50);
        const bool risky = rng.chance(40);  // else every range is readable
        const uint64_t guard = arena + kArenaPages * g_page;
        for (size_t k = 0; k < n; ++k) {
            size_t len = rng.chance(60) ? 1 + rng.below(512) : 1 + rng.below(kLen);
            uint64_t a = k > 0 && rng.chance(15) ? reinterpret_cast<uint64_t>(r[rng.below(k)].iov_base)
                                                  : lo + rng.below(window + (risky ? g_page : 0));
            if (k > 0 && rng.chance(40)) a = reinterpret_cast<uint64_t>(r[k - 1].iov_base) + r[k - 1].iov_len + rng.below(1500);
            if (!risky && a + len > guard) a = guard - len;
            if (!risky && a + len > hole && a < hole + g_page) a = hole - len;
            if (risky && rng.chance(5)) a = g_bad[rng.below(g_bad.size())];
            l[k] = {out.data() + k * kLen, len};
            r[k] = {reinterpret_cast<void*>(a), len};
        }
        if (sorted) std::sort(r, r + n, [](const iovec& x, const iovec& y) { return x.iov_base < y.iov_base; });
        for (size_t k = 0; k < n; ++k) l[k].iov_len = r[k].iov_len;
        auto readable = [&](size_t k) {
            const uint64_t a = reinterpret_cast<uint64_t>(r[k].iov_base);
            const uint64_t end = a + r[k].iov_len;
            return a >= arena && end >= a && end <= readable_end && (end <= hole || a >= hole + g_page);
        };
        auto right = [&](size_t k) {  // the pattern, and zeros in the guard page (never written)
            const uint64_t a = reinterpret_cast<uint64_t>(r[k].iov_base);
            const uint8_t* got = static_cast<const uint8_t*>(l[k].iov_base);
            for (size_t b = 0; b < r[k].iov_len; ++b) {
                const uint64_t o = a + b - arena;
                if (got[b] != (o < kArenaPages * g_page ? static_cast<uint8_t>(o * 131 + 7) : 0)) return false;
            }
            return true;
        };
        size_t good = 0, before_bad = 0;
        while (good < n && readable(good)) before_bad += r[good++].iov_len;
        merged_shapes += n > 1;

        std::memset(out.data(), 0xAB, out.size());
        const bool ok = R.readv(l, r, n);
        CHECK(ok == (good == n), fmt("readv gave %d for %zu ranges, %zu readable first (iteration %llu)", ok, n, good,
                                     (unsigned long long)i));
        if (ok) {
            ++all_ok;
            for (size_t k = 0; k < n; ++k) CHECK(right(k), fmt("readv copied range %zu of %zu wrong", k, n));
        } else {
            ++all_failed;
        }

        std::memset(out.data(), 0xAB, out.size());
        const size_t copied = R.readv_prefix(l, r, n);
        if (good == n) {
            CHECK(copied == before_bad, fmt("readv_prefix copied %zu of %zu readable bytes", copied, before_bad));
        } else {
            ++prefix_short;
            CHECK(copied >= before_bad && copied < before_bad + r[good].iov_len,
                  fmt("readv_prefix copied %zu, the readable prefix is %zu and the next range %zu bytes", copied,
                      before_bad, r[good].iov_len));
        }
        for (size_t k = 0; k < good; ++k) CHECK(right(k), fmt("readv_prefix copied range %zu of %zu wrong", k, n));
    }
    void* back = mmap(reinterpret_cast<void*>(hole), g_page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    CHECK(back != MAP_FAILED, "mmap");
    st.iterations = i;
    st.notes["all readable, copied right"] = all_ok;
    st.notes["some unreadable, refused"] = all_failed;
    st.notes["prefixes stopped at the first unreadable"] = prefix_short;
    st.notes["batches of 2+ ranges"] = merged_shapes;
}

}  // namespace fuzz
