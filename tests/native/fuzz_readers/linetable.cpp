// Target: line_for_offset, all three formats.
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

void fuzz_linetable(Rng& rng, uint64_t deadline, uint64_t max_iter, TargetStats& st) {
    // Oracle first: every real table, unmutated, against CPython's own PyCode_Addr2Line.
    uint64_t compared = 0;
    for (const RealTable& t : g_tables) {
        for (int off = 0; off < t.code_len; off += 2) {
            int got = line_for_offset(L.linetable_format, t.bytes.data(), t.bytes.size(), t.firstlineno, off);
            int want = PyCode_Addr2Line(reinterpret_cast<PyCodeObject*>(t.code), off);
            CHECK(got == want, fmt("line_for_offset(real table of %s, offset %d) = %d, CPython says %d",
                                   PyUnicode_AsUTF8(reinterpret_cast<PyCodeObject*>(t.code)->co_name), off, got, want));
            ++compared;
        }
    }
    st.notes["real offsets matching CPython"] = compared;
    // Regression: a code object may start at line INT_MAX (code.replace() allows it); summing its
    // deltas in int overflowed (UBSan ends the run here if it comes back).
    for (const RealTable& t : g_tables)
        for (int format = 0; format < 3; ++format)
            for (int first : {INT_MAX, INT_MIN, INT_MAX - 1})
                for (int off = 0; off < t.code_len; off += 2 + 2 * (t.code_len / 64))
                    (void)line_for_offset(format, t.bytes.data(), t.bytes.size(), first, off);

    uint64_t i = 0, lines = 0, none = 0;
    for (; i < max_iter && (i & 15 || harness::now_ns() < deadline); ++i) {
        g_heartbeat.fetch_add(1, std::memory_order_relaxed);
        std::vector<uint8_t> tab;
        const RealTable& real = rng.pick(g_tables);
        unsigned how = static_cast<unsigned>(rng.below(10));
        if (how < 3) {  // random bytes
            tab.resize(rng.below(rng.chance(10) ? 5000 : 64));
            for (auto& b : tab) b = static_cast<uint8_t>(rng.next());
        } else {        // a real table, mutated
            tab = real.bytes;
            int muts = how == 9 ? 0 : 1 + static_cast<int>(rng.below(6));
            for (int m = 0; m < muts && !tab.empty(); ++m) {
                switch (rng.below(6)) {
                    case 0: tab[rng.below(tab.size())] ^= static_cast<uint8_t>(1u << rng.below(8)); break;
                    case 1: tab[rng.below(tab.size())] = static_cast<uint8_t>(rng.next()); break;
                    case 2: tab.resize(rng.below(tab.size() + 1)); break;  // truncated
                    case 3: tab.insert(tab.begin() + static_cast<long>(rng.below(tab.size() + 1)), static_cast<uint8_t>(rng.next())); break;
                    case 4: {  // a run of continuation bytes (long varints) or of 0xff
                        size_t at = rng.below(tab.size());
                        uint8_t v = rng.chance(50) ? 0x7f : 0xff;
                        for (size_t k = at; k < tab.size() && k < at + 12; ++k) tab[k] = v;
                        break;
                    }
                    default: {  // spliced with another table
                        const RealTable& other = rng.pick(g_tables);
                        size_t at = rng.below(tab.size());
                        tab.resize(at);
                        tab.insert(tab.end(), other.bytes.begin(), other.bytes.end());
                    }
                }
            }
        }
        // An exact-size heap copy: any read past its end is ASan's to see.
        std::unique_ptr<uint8_t[]> exact(new uint8_t[tab.size()]);
        if (!tab.empty()) std::memcpy(exact.get(), tab.data(), tab.size());
        int format = rng.chance(70) ? L.linetable_format : static_cast<int>(rng.below(4));
        int first = rng.chance(80) ? real.firstlineno : static_cast<int>(interesting_int(rng));
        for (int k = 0; k < 8; ++k) {
            int64_t off;
            switch (rng.below(5)) {
                case 0: off = static_cast<int64_t>(rng.below(2 * tab.size() + 8)); break;
                case 1: off = 2 * static_cast<int64_t>(rng.below(static_cast<uint64_t>(real.code_len) + 4)); break;
                case 2: off = interesting_int(rng); break;
                case 3: off = static_cast<int64_t>(rng.next()); break;
                default: off = -static_cast<int64_t>(rng.below(4));
            }
            int line = line_for_offset(format, exact.get(), tab.size(), first, off);
            if (line == -1) ++none; else ++lines;
        }
    }
    st.iterations = i;
    st.notes["lookups giving a line"] = lines;
    st.notes["lookups giving -1"] = none;
}

}  // namespace fuzz
