// Target: read_str, read_bytes and SymbolTable::frame_for.
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

uint64_t fingerprint_at(uint64_t code) {  // as SymbolTable::fingerprint_of (and the sampler) compute it
    std::vector<uint8_t> cb(L.co_size);
    if (!R.read(code, cb.data(), cb.size()) || !is_code_object(L, cb.data())) return 0;
    if (!fingerprint_needs_name(L, cb.data())) return code_fingerprint(L, cb.data(), nullptr, 0);
    uint64_t name = name_address(L, cb.data());
    size_t len = name_probe_len(L, name);
    uint8_t nm[kNameProbe];
    if (!R.read(name, nm, len)) return 0;
    return code_fingerprint(L, cb.data(), nm, len);
}

// Places `obj` so that it ends `slack` bytes (rounded down to 8) before the guard page.
uint64_t in_guard_arena(const std::vector<uint8_t>& obj, size_t slack) {
    const size_t room = kArenaPages * g_page;
    CHECK(obj.size() + slack + 8 <= room, "an object too big for the guard arena");
    uint8_t* end = static_cast<uint8_t*>(g_guard_arena) + room - slack;
    uint8_t* at = reinterpret_cast<uint8_t*>(reinterpret_cast<uint64_t>(end - obj.size()) & ~uint64_t(7));
    if (!obj.empty()) std::memcpy(at, obj.data(), obj.size());
    return reinterpret_cast<uint64_t>(at);
}

void mutate_bytes(Rng& rng, std::vector<uint8_t>& obj, size_t header) {
    int muts = static_cast<int>(rng.below(4));
    for (int m = 0; m < muts && !obj.empty(); ++m) {
        switch (rng.below(4)) {
            case 0: if (obj.size() >= L.ob_size + 8) store_u64(obj.data() + L.ob_size, static_cast<uint64_t>(interesting_int(rng))); break;
            case 1: obj[rng.below(std::min(obj.size(), header))] ^= static_cast<uint8_t>(1u << rng.below(8)); break;
            case 2: obj[rng.below(obj.size())] = static_cast<uint8_t>(rng.next()); break;
            default: obj.resize(rng.below(obj.size() + 1));
        }
    }
}

// CPython numbers code objects (co_version, 3.12+) until its 32-bit counter is spent; every later
// one has version 0. Such a code object at a dead one's address, with its name string at the dead
// name's address, may differ from it in the name's characters only: the fingerprint must see them.
// (3.9-3.11 have no co_version: the same holds there for every code object.)
void check_code_versions_spent(TargetStats& st) {
    harness::run_python("def alpha_fn():\n    return 1\nspent_code = alpha_fn.__code__\n");
    PyObject* code = harness::main_global("spent_code");
    uint8_t* live = reinterpret_cast<uint8_t*>(code);
    const uint64_t addr = reinterpret_cast<uint64_t>(code);
    uint32_t version = 0;
    if (L.co_version) std::memcpy(&version, live + L.co_version, 4);
    const uint32_t zero = 0;
    if (L.co_version) std::memcpy(live + L.co_version, &zero, 4);
    uint8_t* name = reinterpret_cast<uint8_t*>(name_address(L, live));
    CHECK(PyUnicode_Check(reinterpret_cast<PyObject*>(name)) && PyUnicode_IS_ASCII(reinterpret_cast<PyObject*>(name)), "alpha_fn's name");
    uint8_t* chars = name + L.str_ascii_data;
    CHECK(std::memcmp(chars, "alpha_fn", 8) == 0, "alpha_fn's name characters");
    auto named = [&](uint64_t fp) {
        ProfileData d;
        SymbolTable t(L, R, d);
        const uint32_t id = t.frame_for(addr, fp, 0);
        return d.frames[id].symbol == SymbolTable::kUnverified ? std::string("<unverified>") : d.symbols[d.frames[id].symbol].name;
    };
    const uint64_t fp = fingerprint_at(addr);  // as the sampler took it, while alpha_fn ran
    CHECK(named(fp) == "alpha_fn", "alpha_fn with version 0 is not named: " + named(fp));
    std::memcpy(chars, "bravo_fn", 8);  // another function now, at the same addresses
    const std::string wrong = named(fp);
    std::memcpy(chars, "alpha_fn", 8);
    CHECK(wrong == "<unverified>", "a code object of version 0 that differs in its name only was named " + wrong);

    // The sampler's fingerprints of real stacks whose code objects all have version 0 are the
    // collector's: their frames are named.
    uint64_t frames = 0, unverified = 0;
    std::vector<uint64_t> zeroed;
    std::vector<uint32_t> versions;
    FrameCapture cap(L, R, 512);
    std::vector<FrameRecord> out(512);
    std::unique_ptr<uint8_t[]> ts(new uint8_t[L.ts_size]);
    for (int pass = 0; pass < 2; ++pass) {
        for (const RealThread& t : g_threads) {
            CHECK(R.read(t.tstate, ts.get(), L.ts_size), "cannot read a thread state");
            int depth = 0;
            bool truncated = false;
            if (cap.capture(t.tstate, ts.get(), out.data(), depth, truncated) != Capture::Ok) continue;
            ProfileData d;
            SymbolTable table(L, R, d);
            for (int i = 0; i < depth; ++i) {
                uint8_t* c = reinterpret_cast<uint8_t*>(out[static_cast<size_t>(i)].code);
                if (pass == 0) {
                    if (!L.co_version || std::find(zeroed.begin(), zeroed.end(), out[static_cast<size_t>(i)].code) != zeroed.end()) continue;
                    uint32_t v;
                    std::memcpy(&v, c + L.co_version, 4);
                    zeroed.push_back(out[static_cast<size_t>(i)].code);
                    versions.push_back(v);
                    std::memcpy(c + L.co_version, &zero, 4);
                    continue;
                }
                const uint32_t id = table.frame_for(out[static_cast<size_t>(i)].code, out[static_cast<size_t>(i)].fingerprint, out[static_cast<size_t>(i)].instr_bytes);
                if (id == SymbolTable::kHidden) continue;
                ++frames;
                unverified += d.frames[id].symbol == SymbolTable::kUnverified;
            }
        }
    }
    for (size_t i = 0; i < zeroed.size(); ++i) std::memcpy(reinterpret_cast<uint8_t*>(zeroed[i]) + L.co_version, &versions[i], 4);
    if (L.co_version) std::memcpy(live + L.co_version, &version, 4);
    CHECK(frames > 100 && unverified == 0, fmt("version 0: %llu of %llu sampled frames unverified", (unsigned long long)unverified, (unsigned long long)frames));
    st.notes["version-0 frames named"] = frames;
}

void fuzz_symbols(Rng& rng, uint64_t deadline, uint64_t max_iter, TargetStats& st) {
    const uint64_t t0 = harness::now_ns();
    check_code_versions_spent(st);
    deadline += harness::now_ns() - t0;  // the fuzzing keeps its share of the time
    std::unique_ptr<ProfileData> data(new ProfileData());
    std::unique_ptr<SymbolTable> table(new SymbolTable(L, R, *data));
    std::vector<uint64_t> buf(64 * 1024 / 8, 0);
    uint8_t* w = reinterpret_cast<uint8_t*>(buf.data());
    const uint64_t base = reinterpret_cast<uint64_t>(buf.data());
    const size_t size = buf.size() * 8;
    uint64_t i = 0, strs_ok = 0, bytes_ok = 0, named = 0, unverified = 0, oracle = 0;
    size_t checked_symbols = 2;
    for (; i < max_iter && (i & 15 || harness::now_ns() < deadline); ++i) {
        g_heartbeat.fetch_add(1, std::memory_order_relaxed);
        if (i % 500 == 499) {  // keep the tables (and the line tables they hold) small
            table.reset();
            data.reset(new ProfileData());
            table.reset(new SymbolTable(L, R, *data));
            checked_symbols = 2;
        }
        unsigned what = static_cast<unsigned>(rng.below(10));
        if (what < 3) {  // read_str
            uint64_t addr;
            const RealStr* real = nullptr;
            if (rng.chance(20)) {
                addr = rng.chance(50) ? rng.pick(g_str_addrs) : pool_word(rng, base, size);
            } else {
                real = &rng.pick(g_strs);
                std::vector<uint8_t> obj = real->bytes;
                bool pristine = true;
                if (rng.chance(50) && obj.size() >= 16) {
                    store_u64(obj.data() + L.ob_type, L.unicode_type);
                    pristine = real->is_str;
                }
                if (rng.chance(70)) {
                    mutate_bytes(rng, obj, L.str_compact_data + 8);
                    if (obj.size() >= L.str_state + 4 && rng.chance(30)) obj[L.str_state + rng.below(4)] = static_cast<uint8_t>(rng.next());
                    if (obj.size() >= L.str_length + 8 && rng.chance(30)) store_u64(obj.data() + L.str_length, static_cast<uint64_t>(interesting_int(rng)));
                    pristine = false;
                }
                addr = in_guard_arena(obj, rng.chance(60) ? 0 : rng.below(64));
                if (!pristine) real = nullptr;
            }
            std::string out;
            bool ok = read_str(L, R, addr, out);
            if (ok) {
                ++strs_ok;
                CHECK(valid_utf8(out) && out.size() <= 4 * kMaxStringChars, "read_str produced invalid or oversized UTF-8");
            }
            if (real && real->is_str && real->compact && PyUnicode_GET_LENGTH(real->obj) <= static_cast<Py_ssize_t>(kMaxStringChars)) {
                CHECK(ok && out == real->expect, "read_str of an unmutated copy of a real str differs from CPython's");
                ++oracle;
            }
        } else if (what < 5) {  // read_bytes
            uint64_t addr;
            if (rng.chance(20)) {
                addr = rng.chance(50) ? rng.pick(g_bytes_addrs) : pool_word(rng, base, size);
            } else {
                std::vector<uint8_t> obj = rng.pick(g_bytes_objs);
                mutate_bytes(rng, obj, L.bytes_sval);
                addr = in_guard_arena(obj, rng.chance(60) ? 0 : rng.below(64));
            }
            std::vector<uint8_t> out;
            if (read_bytes(L, R, addr, out)) {
                ++bytes_ok;
                CHECK(out.size() <= kMaxBytesLen, "read_bytes returned more than kMaxBytesLen");
            }
        } else {  // a code object to name: a real one, or a mutated copy pointing at real and fake strings
            uint64_t code;
            PyObject* real_code = nullptr;
            int real_len = 0;
            if (rng.chance(15)) {
                const RealTable& rt = rng.pick(g_tables);
                real_code = rt.code;
                real_len = rt.code_len;
                code = reinterpret_cast<uint64_t>(real_code);
            } else {
                std::fill(buf.begin(), buf.end(), 0);
                const uint64_t o = 8 * rng.below(256);
                CHECK(R.read(rng.pick(g_codes), w + o, L.co_size), "cannot copy a code object");
                // fake strings and bytes after it
                uint64_t spot = (o + L.co_size + 64) & ~uint64_t(7);
                auto place = [&](const std::vector<uint8_t>& obj) {
                    uint64_t at = spot;
                    if (spot + obj.size() + 16 > size) return pool_word(rng, base, size);
                    std::memcpy(w + at, obj.data(), obj.size());
                    spot = (spot + obj.size() + 15) & ~uint64_t(7);
                    return base + at;
                };
                std::vector<uint8_t> s = rng.pick(g_strs).bytes;
                if (s.size() >= 16) store_u64(s.data() + L.ob_type, L.unicode_type);
                mutate_bytes(rng, s, L.str_compact_data + 8);
                std::vector<uint8_t> b = rng.pick(g_bytes_objs);
                if (b.size() > 4096) b.resize(4096);
                mutate_bytes(rng, b, L.bytes_sval);
                uint64_t fake_str = place(s), fake_bytes = place(b);
                uint32_t fields[] = {L.co_name, L.co_qualname ? L.co_qualname : L.co_name, L.co_filename, L.co_linetable};
                for (uint32_t f : fields) {
                    switch (rng.below(5)) {
                        case 0: store_u64(w + o + f, f == L.co_linetable ? fake_bytes : fake_str); break;
                        case 1: store_u64(w + o + f, pool_word(rng, base, size)); break;
                        case 2: store_u64(w + o + f, f == L.co_linetable ? rng.pick(g_bytes_addrs) : rng.pick(g_str_addrs)); break;
                        default: break;  // the real object's
                    }
                }
                if (rng.chance(30)) store_i32(w + o + L.co_firstlineno, static_cast<int32_t>(interesting_int(rng)));
                if (rng.chance(20)) w[o + rng.below(L.co_size)] ^= static_cast<uint8_t>(1u << rng.below(8));
                code = base + o;
            }
            uint64_t fp = fingerprint_at(code);
            bool wrong = rng.chance(10);
            if (wrong) fp ^= 1 + rng.below(1000);
            int64_t instr = rng.chance(80) ? 2 * static_cast<int64_t>(rng.below(400)) - 2 : interesting_int(rng);
            size_t frames_before = data->frames.size();
            uint32_t id = table->frame_for(code, fp, instr);
            if (id == SymbolTable::kHidden) continue;
            CHECK(id < data->frames.size() && data->frames[id].symbol < data->symbols.size(), "frame_for returned a frame that is not in the table");
            if (data->frames[id].symbol == SymbolTable::kUnverified) ++unverified; else ++named;
            if (wrong) CHECK(data->frames[id].symbol == SymbolTable::kUnverified || data->frames.size() == frames_before,
                             "frame_for named a code object whose fingerprint did not match");
            for (; checked_symbols < data->symbols.size(); ++checked_symbols)
                CHECK(valid_utf8(data->symbols[checked_symbols].name) && valid_utf8(data->symbols[checked_symbols].filename), "a symbol is not valid UTF-8");
            if (real_code && !wrong && instr >= 0 && instr < real_len) {
                const Symbol& s = data->symbols[data->frames[id].symbol];
                PyCodeObject* co = reinterpret_cast<PyCodeObject*>(real_code);
                PyObject* want_name = PyObject_GetAttrString(real_code, L.co_qualname ? "co_qualname" : "co_name");
                int want_line = PyCode_Addr2Line(co, static_cast<int>(instr));
                if (want_line < 0) want_line = co->co_firstlineno;
                CHECK(s.name == PyUnicode_AsUTF8(want_name) && s.filename == PyUnicode_AsUTF8(co->co_filename) && data->frames[id].line == want_line,
                      fmt("a real code object resolved to %s (%s:%d), CPython says %s:%d", s.name.c_str(), s.filename.c_str(),
                          data->frames[id].line, PyUnicode_AsUTF8(want_name), want_line));
                Py_DECREF(want_name);
                ++oracle;
            }
        }
    }
    st.iterations = i;
    st.notes["read_str true"] = strs_ok;
    st.notes["read_bytes true"] = bytes_ok;
    st.notes["frames named"] = named;
    st.notes["frames unverified"] = unverified;
    st.notes["real objects read as CPython has them"] = oracle;
}

}  // namespace fuzz
