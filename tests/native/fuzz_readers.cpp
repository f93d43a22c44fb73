// Seeded, bounded fuzzing of every engine function that reads interpreter memory or bytes copied
// from it: the line-table decoders, decode_str, the frame-chain walker, the thread-list reader,
// the symbol reader (read_str, read_bytes, SymbolTable), and the reader's own batching. Built with ASan and UBSan by
// ci/native_checks.sh: an out-of-bounds read, a wild pointer or undefined behaviour ends the run.
//
// Inputs are random bytes, pointer-like words (aligned addresses in the fake image, the real
// PyCode_Type, real code objects and frames, unmapped and wrapping addresses), and mutated copies
// of real objects: line tables and strings of real code, and the thread states and frame chains
// of real Python threads blocked in known functions, copied into a buffer with their pointers
// relocated into it. Unmutated copies double as oracles (the walker must find the real stack, the
// decoders CPython's own answers).
//
// Usage: fuzz_readers [--seconds N | --long] [--seed S] [--iterations N] [--only TARGET] [--reader R]
//   --seconds  total time, split among the targets (default 10; --long is 600)
//   --iterations  a per-target cap, for a run that is the same every time
//   --reader   vm_readv (the default here) or proc_mem (which reads even PROT_NONE pages); not
//              pipe: ASan's write() interceptor checks the copied range as if the program read it
// A failure prints the target, the iteration and the seed; the same seed and --iterations replay it.
#include "harness.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "code_identity.h"
#include "frame_capture.h"
#include "layout.h"
#include "linetable.h"
#include "profile_data.h"
#include "pyobjects.h"
#include "safe_read.h"
#include "native_ids.h"
#include "symbols.h"
#include "thread_list.h"

using namespace spprof;
using harness::fmt;
using harness::Rng;

namespace {


const char* kSetup = R"PY(
import sys, threading, time, types, importlib

# --- code objects: the standard library's and some with unusual line tables -----------------
synthetic = [
    "def gaps():\n    a = 1\n" + "\n" * 300 + "    b = 2\n" + "\n" * 70000 + "    return a + b\n",
    "def big():\n" + "".join("    x%d = %d\n" % (i, i) for i in range(3000)) + "    return 0\n",
    "def wide():\n    return " + " + ".join("v%d" % i for i in range(150)) + "\n",
    "def back(xs):\n    return [\n        x\n        for x in xs\n        if x\n    ]\n",
    "def loop(n):\n    t = 0\n    for i in range(n):\n        t += i\n    while t > 0:\n        t -= 7\n    return t\n",
    "def tr():\n    try:\n        1/0\n    except ZeroDivisionError as e:\n        pass\n    finally:\n        x = 2\n    with open('/dev/null') as f:\n        pass\n",
    "g = (i for i in range(3))\nf = lambda x: (\n  x +\n  1)\nasync def co():\n    await co()\nclass C:\n    def m(self):\n        return 1\n",
    "def calls():\n    return f(\n        1,\n\n\n        2)(\n    3)\n",
    "\n" * 40000 + "def late():\n    return 1\n",
]
roots = [compile(src, "<synthetic-%d>" % i, "exec") for i, src in enumerate(synthetic)]
for name in ("json.decoder", "argparse", "typing", "dataclasses", "ast", "threading", "inspect", "textwrap"):
    try:
        m = importlib.import_module(name)
        with open(m.__file__, encoding="utf-8") as f:
            roots.append(compile(f.read(), m.__file__, "exec"))
    except Exception:
        pass
codes = []
def walk(c):
    codes.append(c)
    for k in c.co_consts:
        if isinstance(k, types.CodeType):
            walk(k)
for r in roots:
    walk(r)
lnotab = sys.version_info < (3, 10)
tables = [(c, c.co_lnotab if lnotab else c.co_linetable, len(c.co_code)) for c in codes]
code_names = [getattr(c, "co_qualname", c.co_name) for c in codes]

# --- strings of every kind --------------------------------------------------------------------
class S(str):
    __slots__ = ()
strs = ["", "a", "hello world", "caf\xe9", "\xff" * 10, "\u65e5\u672c\u8a9e", "\U0001f600 emoji",
        "\ud800 lone", "x" * 4096, "y" * 4097, "\xe9" * 5000, "\u540d" * 4096, sys.intern("interned_name"),
        S("subclass"), S("non-compact \xe9 \u540d"), "\U0010ffff", str(12345) * 7, "\x00nul\x00",
        "\udfff\U0001f600\u0100"]
strs += [c.co_name for c in codes[:300]] + [c.co_filename for c in codes[:50]]
expected = [s.encode("utf-8", "surrogatepass") for s in strs]  # lone surrogates kept, as Python decodes them back
byteses = [b"", b"x", bytes(range(256)), b"\x80" * 3000] + [t[1] for t in tables[:200]]

# --- threads blocked in known functions: live thread states and frame chains to copy ---------
release = threading.Event()
arrived = []
def blocked(tag):
    arrived.append(tag)
    release.wait()
def chain(n, tag):
    if n == 0:
        return blocked(tag)
    return chain(n - 1, tag)
def in_generator(tag):
    def g():
        yield chain(4, tag)
    return list(g())
class Holder:
    def method(self, tag):
        return chain(2, tag)
blockers = [threading.Thread(target=chain, args=(12, "chain")),
            threading.Thread(target=in_generator, args=("gen",)),
            threading.Thread(target=chain, args=(400, "deep")),
            threading.Thread(target=Holder().method, args=("method",))]
for t in blockers:
    t.start()
while len(arrived) < len(blockers):
    time.sleep(0.001)
time.sleep(0.2)  # each has reached release.wait()
blocker_idents = [t.ident for t in blockers]
)PY";

// ------------------------------------------------------------------------------------------------
// Shared state

spprof_layout L;
SafeReader R;
std::atomic<uint64_t> g_heartbeat{0};
std::atomic<const char*> g_target{"setup"};

struct RealTable { PyObject* code; std::vector<uint8_t> bytes; int firstlineno; int code_len; };
struct RealStr { PyObject* obj; std::vector<uint8_t> bytes; bool is_str; bool compact; std::string expect; };
struct RealThread { uint64_t tstate; uint64_t ident; };

std::vector<RealTable> g_tables;
std::vector<RealStr> g_strs;
std::vector<std::vector<uint8_t>> g_bytes_objs;  // copies of real bytes objects (header + data)
std::vector<uint64_t> g_codes;        // addresses of real code objects (kept alive by __main__.codes)
std::vector<uint64_t> g_str_addrs, g_bytes_addrs;
std::vector<uint64_t> g_real_frames;  // frames of the blocked threads
std::vector<RealThread> g_threads;
std::vector<uint64_t> g_bad;          // addresses that cannot be read, or wrap around
void* g_guard_arena = nullptr;        // kArenaPages read-write pages, then a PROT_NONE page, then an unmapped one
constexpr size_t kArenaPages = 16;
size_t g_page = 4096;

struct TargetStats { const char* name; uint64_t iterations = 0; double seconds = 0; std::map<std::string, uint64_t> notes; };

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

// A word that looks like what a thread state or a frame holds, or like garbage.
uint64_t pool_word(Rng& r, uint64_t base, size_t size, const std::vector<uint64_t>* frames = nullptr) {
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

// ------------------------------------------------------------------------------------------------
// Target 1: line_for_offset, all three formats

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

// ------------------------------------------------------------------------------------------------
// Target 2: decode_str

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

// ------------------------------------------------------------------------------------------------
// Target 3: FrameCapture::capture

// A thread's chain as CPython links it, read here the simple way (for the relocation).
std::vector<uint64_t> real_chain(const uint8_t* ts) {
    std::vector<uint64_t> out;
    bool ok = true;
    uint64_t f = load_u64(ts + L.ts_frame);
    if (L.frame_model == SPPROF_FRAMES_CFRAME) f = f ? read_u64(f + L.cframe_current_frame, ok) : 0;
    uint32_t link = L.frame_model == SPPROF_FRAMES_OBJECTS ? L.fo_back : L.if_previous;
    while (ok && f != 0 && out.size() < 2000) {
        out.push_back(f);
        f = read_u64(f + link, ok);
    }
    return out;
}

struct Image {
    std::vector<uint64_t> clean, work;  // `work`'s address is the one its pointers name; never resized
    uint64_t ts_addr = 0;
    std::vector<uint64_t> hot64, hot32, hot8;  // byte offsets of fields worth mutating
    std::vector<uint64_t> frames;             // relocated frame addresses, innermost first
    std::vector<uint64_t> links;              // offsets of their caller fields, innermost first
    int64_t anchor = -1;                      // offset of the current-frame word the walker reads twice
    std::vector<std::vector<uint64_t>> expect;  // codes of an unmutated capture, per FrameCapture
    std::vector<int> expect_result;
    uint64_t base() const { return reinterpret_cast<uint64_t>(work.data()); }
    size_t size() const { return work.size() * 8; }
    uint8_t* bytes() { return reinterpret_cast<uint8_t*>(work.data()); }
};

// Copies a real thread's state and frames (and on 3.11+ its current stack chunk) into one buffer,
// pointing every pointer between them at the copies.
bool build_image(const RealThread& t, Image& img) {
    std::vector<uint8_t> ts(L.ts_size);
    if (!R.read(t.tstate, ts.data(), ts.size())) return false;
    struct Region { uint64_t addr; size_t len; size_t off; };
    std::vector<Region> regions{{t.tstate, L.ts_size, 0}};
    std::vector<uint64_t> chain = real_chain(ts.data());
    if (L.frame_model == SPPROF_FRAMES_OBJECTS) {
        for (uint64_t f : chain) regions.push_back({f, L.fo_size, 0});
    } else {
        if (L.frame_model == SPPROF_FRAMES_CFRAME) regions.push_back({load_u64(ts.data() + L.ts_frame), L.cframe_size, 0});
        uint64_t chunk = load_u64(ts.data() + L.ts_datastack_chunk), limit = load_u64(ts.data() + L.ts_datastack_limit);
        if (chunk && limit > chunk && limit - chunk < (4u << 20)) regions.push_back({chunk, limit - chunk, 0});
    }
    size_t off = 0;
    for (Region& r : regions) {
        r.off = off;
        off += (r.len + 64 + 7) & ~size_t(7);
    }
    img.clean.assign(off / 8 + 64, 0);
    img.work.assign(img.clean.size(), 0);
    uint8_t* c = reinterpret_cast<uint8_t*>(img.clean.data());
    for (const Region& r : regions)
        if (!R.read(r.addr, c + r.off, r.len)) return false;
    auto relocate = [&](uint64_t v, uint64_t& out) {
        for (const Region& r : regions)
            if (v >= r.addr && v <= r.addr + r.len && (v & 7) == (r.addr & 7)) { out = img.base() + r.off + (v - r.addr); return true; }
        return false;
    };
    for (uint64_t& w : img.clean) relocate(w, w);
    img.ts_addr = img.base();
    const uint64_t tsw[] = {L.ts_frame, L.ts_datastack_chunk, L.ts_datastack_top, L.ts_datastack_limit, L.ts_next, L.ts_interp};
    for (uint64_t f : tsw) img.hot64.push_back(f);
    if (L.frame_model == SPPROF_FRAMES_CFRAME) img.anchor = static_cast<int64_t>(regions[1].off + L.cframe_current_frame);
    if (L.frame_model == SPPROF_FRAMES_CURRENT) img.anchor = L.ts_frame;
    if (img.anchor >= 0) img.hot64.push_back(static_cast<uint64_t>(img.anchor));
    for (uint64_t f : chain) {
        uint64_t rf;
        if (!relocate(f, rf)) continue;
        img.frames.push_back(rf);
        uint64_t o = rf - img.base();
        img.links.push_back(o + (L.frame_model == SPPROF_FRAMES_OBJECTS ? L.fo_back : L.if_previous));
        if (L.frame_model == SPPROF_FRAMES_OBJECTS) {
            for (uint64_t x : {L.fo_back, L.fo_code, L.fo_gen, L.ob_type}) img.hot64.push_back(o + x);
            img.hot32.push_back(o + L.fo_lasti);
            img.hot8.push_back(o + L.fo_state);
        } else {
            for (uint64_t x : {L.if_previous, L.if_code, L.if_instr}) img.hot64.push_back(o + x);
            img.hot8.push_back(o + L.if_owner);
        }
    }
    return true;
}

struct Mutator {  // rewrites a few words of an image while the walker copies it, as a live thread does
    std::atomic<int> phase{0};  // 0 parked, 1 running, 2 quit
    std::atomic<int> ack{0};
    uint64_t* words[4] = {};
    uint64_t values[4][4] = {};
    int n = 0;
    std::thread thread;
    void start() {
        thread = std::thread([this] {
            uint64_t k = 0;
            for (;;) {
                int p = phase.load();
                if (p == 2) return;
                if (p == 0) { ack.store(0); std::this_thread::yield(); continue; }
                ack.store(1);
                for (int i = 0; i < n; ++i) __atomic_store_n(words[i], values[i][(k + i) & 3], __ATOMIC_RELAXED);
                ++k;
            }
        });
    }
    void run() { phase.store(1); while (ack.load() != 1) {} }
    void park() { phase.store(0); while (ack.load() != 0) {} }
    void quit() { phase.store(2); thread.join(); }
};

struct CaptureSet {
    std::vector<std::unique_ptr<FrameCapture>> caps;
    std::vector<int> depths{8, 64, 128};
    CaptureSet() { for (int d : depths) caps.emplace_back(new FrameCapture(L, R, d)); }
};

// The checks every walk must pass. With `still` memory, an Ok walk's code objects are read again.
void check_capture(Capture c, int depth, bool truncated, const std::vector<FrameRecord>& out, int max_depth, bool still,
                   const char* what, uint64_t iter) {
    CHECK(c == Capture::Ok || c == Capture::Empty || c == Capture::Torn, fmt("%s #%llu: capture returned %d", what, (unsigned long long)iter, (int)c));
    if (c != Capture::Ok) {
        CHECK(depth == 0, fmt("%s #%llu: a walk that is not Ok reported depth %d", what, (unsigned long long)iter, depth));
        return;
    }
    CHECK(depth >= 1 && depth <= max_depth, fmt("%s #%llu: depth %d of at most %d", what, (unsigned long long)iter, depth, max_depth));
    CHECK(!truncated || depth == max_depth, fmt("%s #%llu: truncated at depth %d < %d", what, (unsigned long long)iter, depth, max_depth));
    if (!still) return;
    for (int i = 0; i < depth; ++i) {
        bool ok;
        uint64_t type = read_u64(out[i].code + L.ob_type, ok);
        CHECK(ok && type == L.code_type, fmt("%s #%llu: frame %d's code 0x%llx is no code object", what, (unsigned long long)iter, i, (unsigned long long)out[i].code));
        CHECK(L.trampoline_code == 0 || out[i].code != L.trampoline_code,
              fmt("%s #%llu: frame %d is 3.12's entry-frame trampoline, not a frame of the program", what, (unsigned long long)iter, i));
        CHECK(out[i].instr_bytes >= -1, fmt("%s #%llu: instruction offset %lld", what, (unsigned long long)iter, (long long)out[i].instr_bytes));
        if (L.frame_model != SPPROF_FRAMES_OBJECTS) {
            int64_t units = static_cast<int64_t>(read_u64(out[i].code + L.ob_size, ok));
            CHECK(ok && out[i].instr_bytes / 2 < units, fmt("%s #%llu: instruction offset %lld past %lld code units", what,
                                                            (unsigned long long)iter, (long long)out[i].instr_bytes, (long long)units));
        }
    }
}

// A fake image from nothing: pointer-like words, a chain of plausible frames, fake code objects.
void random_image(Rng& rng, Image& img, std::vector<uint8_t>& ts_arg) {
    uint8_t* w = img.bytes();
    const uint64_t base = img.base();
    const size_t size = img.size();
    img.frames.clear();
    img.links.clear();
    img.hot64.clear();
    img.anchor = -1;
    for (uint64_t& word : img.work) word = rng.chance(40) ? 0 : pool_word(rng, base, size);
    // fake code objects in the upper half
    std::vector<uint64_t> fake_codes;
    for (int k = 0; k < 6; ++k) {
        uint64_t o = size / 2 + 8 * rng.below((size / 2 - L.co_size - 64) / 8);
        store_u64(w + o + L.ob_type, rng.chance(90) ? L.code_type : pool_word(rng, base, size));
        store_u64(w + o + L.ob_size, rng.chance(80) ? 1 + rng.below(400) : static_cast<uint64_t>(interesting_int(rng)));
        store_i32(w + o + L.co_firstlineno, static_cast<int32_t>(interesting_int(rng)));
        fake_codes.push_back(base + o);
    }
    // the chain, like a stack: frames at rising addresses from a chunk's start, innermost last
    const uint64_t chunk = base + 1024;
    const size_t fsize = L.frame_model == SPPROF_FRAMES_OBJECTS ? L.fo_size : L.if_size;
    const size_t stride = fsize + 8 * rng.below(12);
    const int n = 1 + static_cast<int>(rng.below(std::min<uint64_t>(300, (size / 2 - 2048) / stride)));
    for (int i = 0; i < n; ++i) img.frames.push_back(chunk + 64 + static_cast<uint64_t>(i) * stride);
    for (int i = n - 1; i >= 0; --i) {
        uint8_t* f = w + (img.frames[static_cast<size_t>(i)] - base);
        uint64_t code = rng.chance(45) ? rng.pick(g_codes) : rng.chance(80) ? rng.pick(fake_codes) : pool_word(rng, base, size);
        uint64_t prev = i == 0 ? 0 : img.frames[static_cast<size_t>(i - 1)];
        if (rng.chance(4)) prev = img.frames[rng.below(img.frames.size())];  // a cycle
        if (rng.chance(3)) prev = pool_word(rng, base, size, &img.frames);
        if (L.frame_model == SPPROF_FRAMES_OBJECTS) {
            store_u64(f + L.ob_type, rng.chance(95) ? L.frame_type : pool_word(rng, base, size));
            store_u64(f + L.fo_back, prev);
            store_u64(f + L.fo_code, code);
            store_i32(f + L.fo_lasti, rng.chance(80) ? static_cast<int32_t>(rng.below(200)) - 1 : static_cast<int32_t>(interesting_int(rng)));
            f[L.fo_state] = rng.chance(90) ? static_cast<uint8_t>(L.fo_running) : static_cast<uint8_t>(rng.below(6));
            store_u64(f + L.fo_gen, rng.chance(90) ? 0 : pool_word(rng, base, size));
        } else {
            store_u64(f + L.if_previous, prev);
            store_u64(f + L.if_code, code);
            uint64_t instr = code + L.co_code_adaptive + 2 * rng.below(64) - 2;
            store_u64(f + L.if_instr, rng.chance(85) ? instr : pool_word(rng, base, size));
            f[L.if_owner] = static_cast<uint8_t>(rng.chance(90) ? rng.below(5) : rng.next());
        }
    }
    // innermost first, as the walker meets them
    std::reverse(img.frames.begin(), img.frames.end());
    for (uint64_t f : img.frames) img.links.push_back(f - base + (L.frame_model == SPPROF_FRAMES_OBJECTS ? L.fo_back : L.if_previous));
    // the thread state at the image's start
    img.ts_addr = base;
    uint64_t top = img.frames.front() + fsize;
    for (size_t o = 0; o + 8 <= L.ts_size; o += 8) store_u64(w + o, pool_word(rng, base, size, &img.frames));
    uint64_t first = rng.chance(90) ? img.frames.front() : pool_word(rng, base, size, &img.frames);
    if (L.frame_model == SPPROF_FRAMES_CFRAME) {
        uint64_t cf = base + size / 2 - 256;
        store_u64(w + (cf - base) + L.cframe_current_frame, first);
        store_u64(w + L.ts_frame, rng.chance(90) ? cf : pool_word(rng, base, size));
        img.anchor = static_cast<int64_t>(cf - base + L.cframe_current_frame);
    } else {
        store_u64(w + L.ts_frame, first);
        if (L.frame_model == SPPROF_FRAMES_CURRENT) img.anchor = L.ts_frame;
    }
    img.hot64 = img.links;
    if (img.anchor >= 0) img.hot64.push_back(static_cast<uint64_t>(img.anchor));
    if (L.frame_model != SPPROF_FRAMES_OBJECTS && rng.chance(70)) {
        store_u64(w + L.ts_datastack_chunk, chunk);
        store_u64(w + L.ts_datastack_top, rng.chance(80) ? top : top - 8 * rng.below(64));
        store_u64(w + L.ts_datastack_limit, rng.chance(70) ? top + 8 * rng.below(1024) : pool_word(rng, base, size));
        if (rng.chance(10)) store_u64(w + L.ts_datastack_top, chunk + 8 * rng.below(8));  // below the chunk's header
    }
    ts_arg.assign(w, w + L.ts_size);
    if (rng.chance(15)) ts_arg[rng.below(ts_arg.size())] = static_cast<uint8_t>(rng.next());  // a copy that disagrees
}

void mutate_image(Rng& rng, Image& img) {
    uint8_t* w = img.bytes();
    switch (rng.below(10)) {
        case 0: case 1: case 2: case 3:
            store_u64(w + rng.pick(img.hot64), pool_word(rng, img.base(), img.size(), &img.frames)); break;
        case 4: if (!img.hot8.empty()) w[rng.pick(img.hot8)] = static_cast<uint8_t>(rng.chance(70) ? rng.below(6) : rng.next()); break;
        case 5: if (!img.hot32.empty()) store_i32(w + rng.pick(img.hot32), static_cast<int32_t>(interesting_int(rng))); break;
        case 6: w[rng.below(img.size())] ^= static_cast<uint8_t>(1u << rng.below(8)); break;
        case 7: img.work[rng.below(img.work.size())] = pool_word(rng, img.base(), img.size(), &img.frames); break;
        case 8: if (!img.frames.empty()) store_u64(w + rng.pick(img.hot64), rng.pick(img.frames)); break;  // cycles
        default: {  // a frame field read past the image, or wrapping
            uint64_t v = rng.chance(50) ? ~uint64_t(0) - 8 * rng.below(16) : img.base() + img.size() - 8 * rng.below(4);
            store_u64(w + rng.pick(img.hot64), v);
        }
    }
}

void fuzz_frames(Rng& rng, uint64_t deadline, uint64_t max_iter, TargetStats& st) {
    CaptureSet cs;
    std::vector<FrameRecord> out(128);
    // Images of the blocked threads; an unmutated one must walk to the real thread's stack.
    std::vector<std::unique_ptr<Image>> images;
    for (const RealThread& t : g_threads) {
        std::unique_ptr<Image> img(new Image());
        CHECK(build_image(t, *img), "cannot copy a blocked thread's state and frames");
        std::vector<uint8_t> ts(L.ts_size);
        CHECK(R.read(t.tstate, ts.data(), ts.size()), "cannot read a blocked thread's state");
        for (size_t k = 0; k < cs.caps.size(); ++k) {
            std::vector<FrameRecord> real(static_cast<size_t>(cs.depths[k]));
            int depth = 0;
            bool truncated = false;
            Capture c = cs.caps[k]->capture(t.tstate, ts.data(), real.data(), depth, truncated);
            CHECK(c == Capture::Ok && depth >= 3, fmt("the real blocked thread %llx walks to %d (depth %d)", (unsigned long long)t.ident, (int)c, depth));
            std::vector<uint64_t> codes;
            for (int i = 0; i < depth; ++i) codes.push_back(real[static_cast<size_t>(i)].code);
            img->expect.push_back(codes);
        }
        images.push_back(std::move(img));
    }
    std::unique_ptr<Image> rnd(new Image());
    rnd->work.assign(48 * 1024 / 8, 0);

    Mutator mut;
    mut.start();
    uint64_t i = 0, live = 0, oracle = 0, worst_ns = 0, stale_cframes = 0;
    uint64_t results[3] = {0, 0, 0};
    std::vector<uint8_t> ts_arg;
    for (; i < max_iter && (i & 15 || harness::now_ns() < deadline); ++i) {
        g_heartbeat.fetch_add(1, std::memory_order_relaxed);
        size_t k = rng.below(cs.caps.size());
        FrameCapture& cap = *cs.caps[k];
        const int max_depth = cs.depths[k];
        Image* img;
        bool clean = false;
        if (rng.chance(45)) {
            img = images[rng.below(images.size())].get();
            std::copy(img->clean.begin(), img->clean.end(), img->work.begin());
            int muts = rng.chance(8) ? 0 : 1 + static_cast<int>(rng.below(6));
            for (int m = 0; m < muts; ++m) mutate_image(rng, *img);
            const uint8_t* w = img->bytes();
            ts_arg.assign(w, w + L.ts_size);
            clean = muts == 0;
            if (!clean && rng.chance(15)) store_u64(ts_arg.data() + L.ts_frame, pool_word(rng, img->base(), img->size(), &img->frames));
            if (clean && L.frame_model == SPPROF_FRAMES_CFRAME && img->frames.size() > 2 && rng.chance(50)) {
                // The copy names a _PyCFrame the thread has left (a coroutine's evaluation loop
                // that returned), whose slot still holds an outer frame: the walk must follow the
                // thread state's cframe as it is now, and find the whole stack.
                const uint64_t stale = img->base() + img->size() - 256;
                store_u64(img->bytes() + (stale - img->base()) + L.cframe_current_frame, img->frames[2]);
                store_u64(ts_arg.data() + L.ts_frame, stale);
                ++stale_cframes;
            }
        } else {
            img = rnd.get();
            random_image(rng, *img, ts_arg);
        }
        // The walker reads `ts` directly: hand it an exact-size copy.
        std::unique_ptr<uint8_t[]> ts(new uint8_t[L.ts_size]);
        std::memcpy(ts.get(), ts_arg.data(), L.ts_size);
        std::vector<FrameRecord> records(static_cast<size_t>(max_depth));
        bool is_live = !clean && rng.chance(12) && !img->links.empty();
        if (is_live) {  // the current frame and a few callers change under the walk, as a live thread's do
            mut.n = 0;
            for (int m = 0; m < 4; ++m) {
                uint64_t off = m == 0 && img->anchor >= 0 ? static_cast<uint64_t>(img->anchor)
                                                          : img->links[std::min<size_t>(rng.below(4), img->links.size() - 1)];
                mut.words[m] = reinterpret_cast<uint64_t*>(img->bytes() + off);
                for (int v = 0; v < 4; ++v) {
                    switch (rng.below(5)) {
                        case 0: mut.values[m][v] = ~uint64_t(0) - 8 * rng.below(16); break;  // wraps past the end
                        case 1: mut.values[m][v] = pool_word(rng, img->base(), img->size(), &img->frames); break;
                        default: mut.values[m][v] = img->frames[std::min<size_t>(rng.below(6), img->frames.size() - 1)];  // calls and returns
                    }
                }
                mut.n = m + 1;
            }
            mut.run();
            ++live;
        }
        int depth = -1;
        bool truncated = false;
        uint64_t t0 = harness::now_ns();
        Capture c = cap.capture(img->ts_addr, ts.get(), records.data(), depth, truncated);
        worst_ns = std::max(worst_ns, harness::now_ns() - t0);
        if (is_live) mut.park();
        check_capture(c, depth, truncated, records, max_depth, !is_live, "frames", i);
        results[static_cast<int>(c)]++;
        if (clean) {  // unmutated copy of a real thread: the real stack, every frame of it
            size_t idx = static_cast<size_t>(img - images[0].get());
            for (size_t j = 0; j < images.size(); ++j) if (images[j].get() == img) idx = j;
            const std::vector<uint64_t>& want = images[idx]->expect[k];
            CHECK(c == Capture::Ok && static_cast<size_t>(depth) == want.size(),
                  fmt("frames #%llu: a clean copy of a real thread walks to %d with depth %d, the thread itself to depth %zu",
                      (unsigned long long)i, (int)c, depth, want.size()));
            for (int f = 0; f < depth; ++f)
                CHECK(records[static_cast<size_t>(f)].code == want[static_cast<size_t>(f)], fmt("frames #%llu: frame %d differs from the real walk", (unsigned long long)i, f));
            ++oracle;
        }
    }
    mut.quit();
    st.iterations = i;
    st.notes["Ok"] = results[0];
    st.notes["Empty"] = results[1];
    st.notes["Torn"] = results[2];
    st.notes["walks with memory changing under them"] = live;
    st.notes["clean copies matching the real walk"] = oracle;
    st.notes["... of them through a stale cframe"] = stale_cframes;
    st.notes["slowest walk (us)"] = worst_ns / 1000;
    uint64_t torn_total = 0;
    for (int r = 0; r < kTornReasons; ++r) {
        uint64_t n = 0;
        for (auto& cap : cs.caps) n += cap->torn(r);
        st.notes[kTornReasonNames[r]] = n;
        torn_total += n;
    }
    // a torn walk is taken again at once, and every attempt counts its reason
    CHECK(torn_total >= results[2], fmt("torn counters %llu < torn walks %llu", (unsigned long long)torn_total, (unsigned long long)results[2]));
}

// ------------------------------------------------------------------------------------------------
// Target 4: ThreadList::enumerate (and refresh)

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
            // list whose copied entries hold every invariant
            const bool marked = round > 0 && rng.chance(50);
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

// ------------------------------------------------------------------------------------------------
// Target 5: read_str, read_bytes and SymbolTable::frame_for

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

// ------------------------------------------------------------------------------------------------
// Setup

std::vector<uint8_t> copy_object(PyObject* o, size_t len) {
    std::vector<uint8_t> b(len);
    CHECK(R.read(reinterpret_cast<uint64_t>(o), b.data(), len), "cannot copy a live object");
    return b;
}

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

void collect_inputs() {
    // code objects and their line tables
    PyObject* tables = harness::main_global("tables");
    for (Py_ssize_t i = 0; i < PyList_Size(tables); ++i) {
        PyObject* t = PyList_GetItem(tables, i);
        PyObject* code = PyTuple_GetItem(t, 0);
        PyObject* tab = PyTuple_GetItem(t, 1);
        RealTable rt;
        rt.code = code;
        rt.bytes.assign(PyBytes_AsString(tab), PyBytes_AsString(tab) + PyBytes_Size(tab));
        rt.firstlineno = reinterpret_cast<PyCodeObject*>(code)->co_firstlineno;
        rt.code_len = static_cast<int>(PyLong_AsLong(PyTuple_GetItem(t, 2)));
        g_tables.push_back(std::move(rt));
        g_codes.push_back(reinterpret_cast<uint64_t>(code));
    }
    Py_DECREF(tables);  // __main__ keeps them alive
    // strings
    PyObject* strs = harness::main_global("strs");
    PyObject* expected = harness::main_global("expected");
    int noncompact = 0;
    for (Py_ssize_t i = 0; i < PyList_Size(strs); ++i) {
        PyObject* s = PyList_GetItem(strs, i);
        RealStr rs;
        rs.obj = s;
        rs.is_str = PyUnicode_CheckExact(s);
        rs.compact = PyUnicode_IS_COMPACT(s);
        size_t len;
        if (rs.compact) {
            size_t data = PyUnicode_IS_ASCII(s) ? L.str_ascii_data : L.str_compact_data;
            len = data + static_cast<size_t>(PyUnicode_GET_LENGTH(s) + 1) * PyUnicode_KIND(s);
        } else {
            len = static_cast<size_t>(Py_TYPE(s)->tp_basicsize);
            ++noncompact;
        }
        // read_str always copies str_compact_data bytes first (a short ASCII str is smaller: what
        // follows it in memory comes along), and decode_str wants at least that many.
        len = std::max<size_t>(len, L.str_compact_data);
        rs.bytes = copy_object(s, len);
        PyObject* e = PyList_GetItem(expected, i);
        rs.expect.assign(PyBytes_AsString(e), static_cast<size_t>(PyBytes_Size(e)));
        g_strs.push_back(std::move(rs));
        g_str_addrs.push_back(reinterpret_cast<uint64_t>(s));
    }
    CHECK(noncompact > 0, "no non-compact str to fuzz decode_str with");
    Py_DECREF(strs);
    Py_DECREF(expected);
    PyObject* byteses = harness::main_global("byteses");
    for (Py_ssize_t i = 0; i < PyList_Size(byteses); ++i) {
        PyObject* b = PyList_GetItem(byteses, i);
        g_bytes_objs.push_back(copy_object(b, L.bytes_sval + static_cast<size_t>(PyBytes_Size(b)) + 1));
        g_bytes_addrs.push_back(reinterpret_cast<uint64_t>(b));
    }
    Py_DECREF(byteses);
    // the blocked threads, through the engine's own list reader
    PyObject* idents = harness::main_global("blocker_idents");
    static NativeIds ids;
    ThreadList tl(L, R, ids, 64, 64);
    CHECK(tl.enumerate(), "cannot enumerate the real thread states");
    for (Py_ssize_t i = 0; i < PyList_Size(idents); ++i) {
        uint64_t ident = PyLong_AsUnsignedLongLong(PyList_GetItem(idents, i));
        for (size_t j = 0; j < tl.size(); ++j)
            if (tl[j].ident == ident) g_threads.push_back({tl[j].tstate, ident});
    }
    Py_DECREF(idents);
    CHECK(g_threads.size() == 4, fmt("found %zu of the 4 blocked threads", g_threads.size()));
    for (const RealThread& t : g_threads) {
        std::vector<uint8_t> ts(L.ts_size);
        CHECK(R.read(t.tstate, ts.data(), ts.size()), "cannot read a thread state");
        for (uint64_t f : real_chain(ts.data())) g_real_frames.push_back(f);
    }
    // addresses that cannot be read, or that wrap
    g_page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    void* arena = mmap(nullptr, (kArenaPages + 2) * g_page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(arena != MAP_FAILED, "mmap");
    const uint64_t a = reinterpret_cast<uint64_t>(arena), guard = a + kArenaPages * g_page;
    mprotect(reinterpret_cast<void*>(guard), g_page, PROT_NONE);         // the guard page
    munmap(reinterpret_cast<void*>(guard + g_page), g_page);             // and an unmapped one
    g_guard_arena = arena;
    g_bad = {8, 0x1000, guard, guard + g_page, guard - 8, guard - 4,
             kMaxAddr - 8, kMaxAddr, ~uint64_t(0) - 7, ~uint64_t(0) - 0x3f, 0xdeadbeefdeadbee8ull};
}

}  // namespace

int main(int argc, char** argv) {
    double seconds = 10;
    uint64_t seed = 20240607, max_iter = UINT64_MAX;
    std::string only, reader;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--seconds" && i + 1 < argc) seconds = std::atof(argv[++i]);
        else if (a == "--long") seconds = 600;
        else if (a == "--seed" && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 0);
        else if (a == "--iterations" && i + 1 < argc) max_iter = std::strtoull(argv[++i], nullptr, 0);
        else if (a == "--only" && i + 1 < argc) only = argv[++i];
        else if (a == "--reader" && i + 1 < argc) reader = argv[++i];
        else {
            std::fprintf(stderr, "usage: %s [--seconds N | --long] [--seed S] [--iterations N] [--only linetable|decode_str|frames|threads|symbols|reads] [--reader vm_readv|proc_mem]\n", argv[0]);
            return 64;
        }
    }
    const uint64_t t0 = harness::now_ns();
    harness::start_python();
    char err[512] = {0};
    CHECK(spprof_layout_init(&L, err, sizeof err) == 0, err);
    std::string error;
    CHECK(R.open(reader, error), error);
    harness::run_python(kSetup);
    collect_inputs();

    // A walk or a list read that never ends is a failure too.
    std::atomic<bool> done{false};
    std::thread watchdog([&] {
        uint64_t last = ~uint64_t(0);
        int still = 0;
        while (!done.load()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(250));
            uint64_t now = g_heartbeat.load();
            still = now == last ? still + 1 : 0;
            last = now;
            if (still >= 120) {
                std::fprintf(stderr, "\nHANG: no iteration of %s finished in 30 s (seed %llu)\n", g_target.load(), (unsigned long long)seed);
                std::_Exit(3);
            }
        }
    });

    struct Target { const char* name; double share; void (*fn)(Rng&, uint64_t, uint64_t, TargetStats&); };
    const Target targets[] = {{"linetable", 0.15, fuzz_linetable}, {"decode_str", 0.10, fuzz_decode_str},
                              {"frames", 0.35, fuzz_frames}, {"threads", 0.15, fuzz_threads}, {"symbols", 0.15, fuzz_symbols},
                              {"reads", 0.10, fuzz_reads}};
    std::printf("fuzz_readers: Python %d.%d (frame model %d, line table format %d), seed %llu, %.0f s, reader %s\n",
                L.py_major, L.py_minor, L.frame_model, L.linetable_format, (unsigned long long)seed, seconds, R.method_name());
    std::printf("inputs: %zu real code objects, %zu strs, %zu bytes objects, %zu blocked threads with %zu frames\n",
                g_codes.size(), g_strs.size(), g_bytes_objs.size(), g_threads.size(), g_real_frames.size());
    std::fflush(stdout);
    double share_sum = 0;
    for (const Target& t : targets) if (only.empty() || only == t.name) share_sum += t.share;
    CHECK(share_sum > 0, "no such target: " + only);
    uint64_t total_iter = 0;
    for (size_t k = 0; k < sizeof targets / sizeof targets[0]; ++k) {
        const Target& t = targets[k];
        if (!only.empty() && only != t.name) continue;
        g_target = t.name;
        TargetStats st;
        st.name = t.name;
        Rng rng(seed * 0x100000001b3ull + k);
        uint64_t start = harness::now_ns();
        t.fn(rng, start + static_cast<uint64_t>(seconds * t.share / share_sum * 1e9), max_iter, st);
        st.seconds = (harness::now_ns() - start) / 1e9;
        total_iter += st.iterations;
        std::printf("  %-10s %9llu iterations in %5.1f s", t.name, (unsigned long long)st.iterations, st.seconds);
        const char* sep = ": ";
        for (const auto& n : st.notes) { std::printf("%s%s %llu", sep, n.first.c_str(), (unsigned long long)n.second); sep = ", "; }
        std::printf("\n");
        std::fflush(stdout);
    }
    done = true;
    watchdog.join();
    harness::run_python("release.set()\nfor t in blockers: t.join()\n");
    std::printf("fuzz_readers: clean, %llu iterations in %.1f s\n", (unsigned long long)total_iter, (harness::now_ns() - t0) / 1e9);
    return 0;
}
