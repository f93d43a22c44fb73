// Target: decode_str.
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

void fuzz_decode_str(Rng& rng, uint64_t deadline, uint64_t max_iter, TargetStats& st) {
    uint64_t oracle = 0;
    for (const RealStr& s : g_strs) {  // unmutated: CPython's own contents, or false where spprof declines
        std::string out;
        size_t need = 0;
        bool ok = decode_str(L, s.bytes.data(), s.bytes.size(), out, need);
        bool want = s.is_str && s.compact && PyUnicode_GET_LENGTH(s.obj) <= static_cast<Py_ssize_t>(kMaxStringChars);
        CHECK(ok == want, fmt("decode_str(real str of %zd chars, compact %d, exact str %d) = %d", PyUnicode_GET_LENGTH(s.obj), s.compact, s.is_str, ok));
        if (ok) {
            CHECK(out == s.expect, fmt("decode_str of a real str of %zd chars differs from CPython's", PyUnicode_GET_LENGTH(s.obj)));
            // read_str's first, short copy: it asks for exactly the object's size
            std::string again;
            size_t need2 = 0;
            size_t head = std::min<size_t>(L.str_compact_data, s.bytes.size());
            if (!decode_str(L, s.bytes.data(), head, again, need2))
                CHECK(need2 > head && need2 <= s.bytes.size(), fmt("decode_str asked for %zu bytes of a %zu-byte str", need2, s.bytes.size()));
            ++oracle;
        }
    }
    st.notes["real strs decoded as CPython does"] = oracle;

    uint64_t i = 0, decoded = 0;
    for (; i < max_iter && (i & 15 || harness::now_ns() < deadline); ++i) {
        g_heartbeat.fetch_add(1, std::memory_order_relaxed);
        std::vector<uint8_t> obj;
        if (rng.chance(25)) {
            obj.resize(rng.below(600));
            for (auto& b : obj) b = static_cast<uint8_t>(rng.next());
            if (obj.size() >= 16 && rng.chance(80)) store_u64(obj.data() + L.ob_type, L.unicode_type);
        } else {
            const RealStr& s = rng.pick(g_strs);
            obj = s.bytes;
            if (rng.chance(50) && obj.size() >= 16) store_u64(obj.data() + L.ob_type, L.unicode_type);
            int muts = static_cast<int>(rng.below(5));
            for (int m = 0; m < muts && !obj.empty(); ++m) {
                switch (rng.below(5)) {
                    case 0:  // the length
                        if (obj.size() >= L.str_length + 8) store_u64(obj.data() + L.str_length, static_cast<uint64_t>(interesting_int(rng)));
                        break;
                    case 1:  // the state bits (kind, compact, ascii)
                        if (obj.size() >= L.str_state + 4) obj[L.str_state + rng.below(4)] = static_cast<uint8_t>(rng.next());
                        break;
                    case 2: obj[rng.below(std::min<size_t>(obj.size(), L.str_compact_data + 8))] ^= static_cast<uint8_t>(1u << rng.below(8)); break;
                    case 3: obj[rng.below(obj.size())] = static_cast<uint8_t>(rng.next()); break;
                    default: obj.resize(rng.below(obj.size() + 1));
                }
            }
        }
        size_t len = rng.chance(70) ? obj.size() : rng.below(obj.size() + 1);
        std::unique_ptr<uint8_t[]> exact(new uint8_t[len]);
        if (len) std::memcpy(exact.get(), obj.data(), len);
        std::string out;
        size_t need = 0;
        if (decode_str(L, exact.get(), len, out, need)) {
            ++decoded;
            CHECK(need <= len, fmt("decode_str succeeded needing %zu of %zu bytes", need, len));
            CHECK(valid_utf8(out) && out.size() <= 4 * kMaxStringChars, "decode_str produced invalid or oversized UTF-8");
        }
    }
    st.iterations = i;
    st.notes["decoded"] = decoded;
}

}  // namespace fuzz
