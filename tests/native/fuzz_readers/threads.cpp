// Target: ThreadList::enumerate (and refresh), and NativeIds.
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

// NativeIds in a thread-churning process: more threads than slots over its life, most of them
// exited. Every thread alive is found, in a bounded probe; a full window of live threads is
// counted, never silently dropped.
void check_native_ids(TargetStats& st) {
    static NativeIds ids;
    const uint64_t n = NativeIds::kSlots + NativeIds::kSlots / 2;
    auto ident_of = [](uint64_t i) { return 0x7f0000001000ull + i * 0x101000ull; };
    const uint32_t pid_max = 4194304;  // tids are below it (PID_MAX_LIMIT): none lives at these
    for (uint64_t i = 0; i < n; ++i) ids.put(ident_of(i), pid_max + static_cast<uint32_t>(i));
    CHECK(ids.not_stored() == 0, fmt("native ids: %llu not stored with every old thread exited", (unsigned long long)ids.not_stored()));
    CHECK(ids.evicted() >= n - NativeIds::kSlots, fmt("native ids: %llu evicted", (unsigned long long)ids.evicted()));
    // a quarter of the slots' worth of live threads (all this one), among the exited ones
    const uint32_t me = static_cast<uint32_t>(::gettid());
    for (uint64_t i = n; i < n + NativeIds::kSlots / 4; ++i) ids.put(ident_of(i), me);
    for (uint64_t i = n; i < n + NativeIds::kSlots / 4; ++i)
        CHECK(ids.get(ident_of(i)) == me, fmt("native ids: live thread %llu not found", (unsigned long long)i));
    CHECK(ids.not_stored() == 0, fmt("native ids: %llu live threads not stored", (unsigned long long)ids.not_stored()));
    // then live threads until no room is left: the ones that do not fit are counted
    uint64_t m = 0;
    for (; m < n && ids.not_stored() < 64; ++m) ids.put(ident_of(n + m), me);
    CHECK(ids.not_stored() > 0, "native ids: a full map stored everything");
    uint64_t found = 0;  // a live thread's entry is never evicted: each is found or counted
    for (uint64_t i = 0; i < m; ++i) found += ids.get(ident_of(n + i)) == me;
    CHECK(found + ids.not_stored() == m, fmt("native ids: %llu found and %llu not stored of %llu", (unsigned long long)found, (unsigned long long)ids.not_stored(), (unsigned long long)m));
    st.notes["native ids evicted"] = ids.evicted();
    st.notes["native ids not stored (full of live threads)"] = ids.not_stored();
}

void fuzz_threads(Rng& rng, uint64_t deadline, uint64_t max_iter, TargetStats& st) {
    const uint64_t t0 = harness::now_ns();
    check_native_ids(st);
    deadline += harness::now_ns() - t0;  // the fuzzing keeps its share of the time
    static spprof_layout L2;  // the lists keep a reference: its `interp` moves to the fake image
    L2 = L;
    static NativeIds ids;
    for (const RealThread& t : g_threads) ids.put(t.ident, 1000 + static_cast<uint32_t>(t.ident & 0xffff));
    std::vector<std::unique_ptr<ThreadList>> lists;
    const size_t maxes[] = {4, 64, 4096};  // the bounds; the second list starts with room for 2 and grows
    for (size_t m : maxes) lists.emplace_back(new ThreadList(L2, R, ids, m == 64 ? 2 : m, m));

    const size_t interp_len = L.interp_threads_head + 64;
    std::vector<uint8_t> real_interp(interp_len);
    CHECK(R.read(L.interp, real_interp.data(), interp_len), "cannot read the interpreter state");
    std::vector<std::vector<uint8_t>> real_ts;
    for (const RealThread& t : g_threads) {
        real_ts.emplace_back(L.ts_size);
        CHECK(R.read(t.tstate, real_ts.back().data(), L.ts_size), "cannot read a thread state");
    }
    const size_t ts_stride = (L.ts_size + 64) & ~size_t(7);
    const size_t max_k = 12;
    std::vector<uint64_t> buf(((interp_len + 64 + ts_stride * (max_k + 1)) + 7) / 8, 0);
    uint8_t* w = reinterpret_cast<uint8_t*>(buf.data());
    const uint64_t base = reinterpret_cast<uint64_t>(buf.data());
    const size_t size = buf.size() * 8;

    uint64_t i = 0, oks = 0, fails = 0, overflows = 0, oracle = 0, stale = 0, loops = 0;
    for (; i < max_iter && (i & 15 || harness::now_ns() < deadline); ++i) {
        g_heartbeat.fetch_add(1, std::memory_order_relaxed);
        // the interpreter image
        unsigned kind = static_cast<unsigned>(rng.below(10));
        if (kind < 5) std::memcpy(w, real_interp.data(), interp_len);
        else for (size_t o = 0; o + 8 <= interp_len; o += 8) store_u64(w + o, kind < 8 ? pool_word(rng, base, size) : 0);
        L2.interp = rng.chance(95) ? base : pool_word(rng, base, size);
        // the thread states
        const size_t k = rng.below(max_k + 1);
        std::vector<uint64_t> ts_addrs;
        for (size_t j = 0; j < k; ++j) ts_addrs.push_back(base + ((interp_len + 63) & ~size_t(7)) + j * ts_stride);
        bool perturbed = kind >= 5;
        for (size_t j = 0; j < k; ++j) {
            uint8_t* t = w + (ts_addrs[j] - base);
            if (rng.chance(60)) std::memcpy(t, rng.pick(real_ts).data(), L.ts_size);
            else for (size_t o = 0; o + 8 <= L.ts_size; o += 8) store_u64(t + o, pool_word(rng, base, size, &ts_addrs));
            store_u64(t + L.ts_interp, L2.interp);
            store_u64(t + L.ts_next, j + 1 < k ? ts_addrs[j + 1] : 0);
            store_u64(t + L.ts_thread_id, rng.chance(50) ? rng.pick(g_threads).ident : rng.next());
        }
        store_u64(w + L.interp_threads_head, k ? ts_addrs[0] : 0);
        // A thread state freed and reused as the new head while the list was walked: the copies
        // link into a loop (A -> C -> A ...). Nothing else is wrong with the list.
        const bool loop = k >= 2 && rng.chance(15);
        if (loop) store_u64(w + (ts_addrs[k - 1] - base) + L.ts_next, ts_addrs[rng.below(k - 1)]);
        int muts = loop || rng.chance(40) ? 0 : 1 + static_cast<int>(rng.below(4));
        perturbed = perturbed || muts > 0;
        for (int m = 0; m < muts; ++m) {
            uint64_t field = L.ts_next;
            switch (rng.below(4)) { case 0: field = L.ts_interp; break; case 1: field = L.ts_thread_id; break; default: break; }
            uint64_t v;
            switch (rng.below(6)) {
                case 0: v = k ? ts_addrs[rng.below(k)] : base; break;                 // a cycle
                case 1: v = (k ? ts_addrs[rng.below(k)] : base) + 1 + rng.below(7); break;  // misaligned
                case 2: v = g_threads.empty() ? 0 : rng.pick(g_threads).tstate; break;   // another interpreter's view
                case 3: v = rng.pick(g_bad); break;
                default: v = pool_word(rng, base, size, &ts_addrs);
            }
            if (k && rng.chance(85)) store_u64(w + (ts_addrs[rng.below(k)] - base) + field, v);
            else store_u64(w + L.interp_threads_head, v);
        }
        size_t which = rng.chance(10) ? 2 : rng.chance(40) ? 0 : 1;
        ThreadList& tl = *lists[which];
        const size_t cap = maxes[which];
        for (int round = 0; round < 1 + static_cast<int>(rng.below(3)); ++round) {
            if (round > 0 && rng.chance(50)) {  // the list changes between ticks
                if (k) store_u64(w + (ts_addrs[rng.below(k)] - base) + (rng.chance(50) ? L.ts_next : L.ts_interp), pool_word(rng, base, size, &ts_addrs));
                perturbed = true;
            }
            // the sampler leaves quiet threads' states uncopied: any mark must still give a
            // list whose copied entries hold every invariant (marks last until forgotten: each
            // round has only its own)
            const bool marked = round > 0 && rng.chance(50);
            tl.forget_marks();
            if (marked) for (size_t j = 0; j < tl.size(); ++j) if (rng.chance(50)) tl.leave_stale(j);
            bool ok = tl.enumerate();
            CHECK(tl.size() <= cap, fmt("threads #%llu: %zu thread states in a list of %zu", (unsigned long long)i, tl.size(), cap));
            CHECK(!tl.overflowed() || tl.size() == cap, fmt("threads #%llu: overflowed at %zu of %zu", (unsigned long long)i, tl.size(), cap));
            // every state copied afresh: a loop closed within the bound is a torn list (an
            // uncopied state's link is unknown, and then the list of the last tick may stand)
            if (loop && !perturbed && !marked && L2.interp == base && k < cap)
                CHECK(!ok, fmt("threads #%llu: a looping list of %zu was accepted with %zu entries", (unsigned long long)i, k, tl.size()));
            loops += loop && !ok;
            if (ok) {
                ++oks;
                overflows += tl.overflowed();
                std::set<uint64_t> distinct;
                for (size_t j = 0; j < tl.size(); ++j) distinct.insert(tl[j].tstate);
                CHECK(distinct.size() == tl.size(), fmt("threads #%llu: a thread state listed twice (%zu distinct of %zu)", (unsigned long long)i, distinct.size(), tl.size()));
                for (size_t j = 0; j < tl.size(); ++j) {
                    const ThreadSeen& s = tl[j];
                    stale += !tl.fresh(j);
                    CHECK((s.tstate & 7) == 0 && s.tstate != 0 && s.tstate < kMaxAddr, fmt("threads #%llu: thread state 0x%llx", (unsigned long long)i, (unsigned long long)s.tstate));
                    CHECK(load_u64(s.copy + L.ts_interp) == L2.interp, fmt("threads #%llu: a thread state of another interpreter was kept", (unsigned long long)i));
                    CHECK(s.ident == load_u64(s.copy + L.ts_thread_id), fmt("threads #%llu: ident differs from its copy", (unsigned long long)i));
                }
                if (tl.size() > 0 && rng.chance(50)) (void)tl.refresh(rng.below(tl.size()));
            } else {
                ++fails;
            }
            if (!perturbed && !loop && L2.interp == base) {  // well formed: every thread state, in order
                CHECK(ok && tl.size() == std::min(k, cap), fmt("threads #%llu: a well-formed list of %zu gave %d with %zu", (unsigned long long)i, k, ok, tl.size()));
                for (size_t j = 0; j < tl.size(); ++j) CHECK(tl[j].tstate == ts_addrs[j], "threads: a well-formed list read out of order");
                ++oracle;
            }
        }
    }
    st.iterations = i;
    st.notes["enumerate true"] = oks;
    st.notes["enumerate false"] = fails;
    st.notes["overflowed"] = overflows;
    st.notes["loops rejected"] = loops;
    st.notes["entries left stale"] = stale;
    st.notes["well-formed lists read exactly"] = oracle;
}

}  // namespace fuzz
