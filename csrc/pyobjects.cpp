#include "pyobjects.h"

#include "bytes.h"

namespace spprof {

namespace {

void append_utf8(std::string& out, uint32_t cp) {
    // A lone surrogate (a non-UTF-8 file name decoded by os.fsdecode: 'caf\udce9') is kept in
    // three bytes as Python's "surrogatepass" writes it, so the name Python shows comes back.
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp <= 0x10FFFF) {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += "\xEF\xBF\xBD";
    }
}

}  // namespace

bool decode_str(const spprof_layout& L, const uint8_t* obj, size_t len, std::string& out, size_t& need) {
    need = 0;
    if (len < L.str_compact_data) return false;
    if (load_u64(obj + L.ob_type) != L.unicode_type) return false;
    int64_t chars = load_i64(obj + L.str_length);
    uint32_t state;
    std::memcpy(&state, obj + L.str_state, sizeof state);
    if (chars < 0 || static_cast<size_t>(chars) > kMaxStringChars) return false;
    if (!(state & L.str_compact_bit)) return false;  // names and file names are compact
    bool ascii = (state & L.str_ascii_bit) != 0;
    uint32_t kind = (state & L.str_kind_mask) >> L.str_kind_shift;
    if (kind != 1 && kind != 2 && kind != 4) return false;
    if (ascii && kind != 1) return false;
    size_t data = ascii ? L.str_ascii_data : L.str_compact_data;
    need = data + static_cast<size_t>(chars) * kind;
    if (need > len) return false;
    out.clear();
    const uint8_t* p = obj + data;
    for (int64_t i = 0; i < chars; ++i) {
        uint32_t cp;
        if (kind == 1) cp = p[i];
        else if (kind == 2) { uint16_t v; std::memcpy(&v, p + i * 2, 2); cp = v; }
        else std::memcpy(&cp, p + i * 4, 4);
        if (ascii && cp >= 0x80) return false;
        append_utf8(out, cp);
    }
    return true;
}

bool read_str(const spprof_layout& L, SafeReader& reader, uint64_t addr, std::string& out) {
    uint8_t small[512];
    if (!reader.read(addr, small, L.str_compact_data)) return false;
    size_t need = 0;
    if (decode_str(L, small, L.str_compact_data, out, need)) return true;
    if (need == 0 || need > L.str_compact_data + kMaxStringChars * 4) return false;
    std::vector<uint8_t> whole(need);
    if (!reader.read(addr, whole.data(), need)) return false;
    return decode_str(L, whole.data(), need, out, need);
}

bool read_bytes(const spprof_layout& L, SafeReader& reader, uint64_t addr, std::vector<uint8_t>& out) {
    uint8_t head[64];
    if (L.bytes_sval > sizeof head || !reader.read(addr, head, L.bytes_sval)) return false;
    if (load_u64(head + L.ob_type) != L.bytes_type) return false;
    int64_t n = load_i64(head + L.ob_size);
    if (n < 0 || static_cast<size_t>(n) > kMaxBytesLen) return false;
    out.resize(static_cast<size_t>(n));
    return reader.read(addr + L.bytes_sval, out.data(), out.size());
}

}  // namespace spprof
