#include "pyobjects.h"

#include <algorithm>

#include "bytes.h"

namespace spprof {

size_t utf8_encode(uint32_t cp, char out[4]) {
    // A lone surrogate (a non-UTF-8 file name decoded by os.fsdecode: 'caf\udce9') is kept in
    // three bytes as Python's "surrogatepass" writes it, so the name Python shows comes back.
    if (cp < 0x80) {
        out[0] = static_cast<char>(cp);
        return 1;
    }
    if (cp < 0x800) {
        out[0] = static_cast<char>(0xC0 | (cp >> 6));
        out[1] = static_cast<char>(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = static_cast<char>(0xE0 | (cp >> 12));
        out[1] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out[2] = static_cast<char>(0x80 | (cp & 0x3F));
        return 3;
    }
    if (cp <= 0x10FFFF) {
        out[0] = static_cast<char>(0xF0 | (cp >> 18));
        out[1] = static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out[2] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out[3] = static_cast<char>(0x80 | (cp & 0x3F));
        return 4;
    }
    std::memcpy(out, "\xEF\xBF\xBD", 3);
    return 3;
}

uint32_t str_char(const uint8_t* chars, uint32_t kind, size_t i) {
    if (kind == 1) return chars[i];
    if (kind == 2) { uint16_t v; std::memcpy(&v, chars + i * 2, 2); return v; }
    uint32_t v;
    std::memcpy(&v, chars + i * 4, 4);
    return v;
}

bool str_shape(const spprof_layout& L, const uint8_t* head, StrShape& out) {
    if (load_u64(head + L.ob_type) != L.unicode_type) return false;
    int64_t chars = load_i64(head + L.str_length);
    uint32_t state;
    std::memcpy(&state, head + L.str_state, sizeof state);
    if (chars < 0 || static_cast<size_t>(chars) > kMaxStringChars) return false;
    if (!(state & L.str_compact_bit)) return false;  // names and file names are compact
    out.ascii = (state & L.str_ascii_bit) != 0;
    out.kind = (state & L.str_kind_mask) >> L.str_kind_shift;
    if (out.kind != 1 && out.kind != 2 && out.kind != 4) return false;
    if (out.ascii && out.kind != 1) return false;
    out.data = out.ascii ? L.str_ascii_data : L.str_compact_data;
    out.chars = static_cast<size_t>(chars);
    return true;
}

bool decode_str(const spprof_layout& L, const uint8_t* obj, size_t len, std::string& out, size_t& need) {
    need = 0;
    StrShape s;
    if (len < L.str_compact_data || !str_shape(L, obj, s)) return false;
    need = s.data + s.chars * s.kind;
    if (need > len) return false;
    out.clear();
    for (size_t i = 0; i < s.chars; ++i) {
        uint32_t cp = str_char(obj + s.data, s.kind, i);
        if (s.ascii && cp >= 0x80) return false;
        char b[4];
        out.append(b, utf8_encode(cp, b));
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

bool read_dict_entries(const spprof_layout& L, SafeReader& reader, uint64_t dict, uint8_t* out, size_t cap,
                       DictEntries& e) {
    constexpr size_t kHead = 128;  // a dict, or its keys' header
    e = DictEntries{};
    uint8_t d[kHead], k[kHead];
    const size_t dn = std::max({L.dict_used, L.dict_keys, L.dict_values}) + 8;
    if (dn > sizeof d || !reader.read(dict, d, dn)) return false;
    if (load_i64(d + L.dict_used) <= 0) return true;
    if (load_u64(d + L.dict_values) != 0) return false;
    const uint64_t keys = load_u64(d + L.dict_keys);
    if (!plausible(keys) || L.dk_indices > sizeof k || !reader.read(keys, k, L.dk_indices)) return false;
    uint64_t size, index_bytes;
    e.size = L.dk_entry_size;
    e.key = L.dk_entry_key;
    e.value = L.dk_entry_value;
    if (L.dk_size_log2) {
        if (k[L.dk_size] < 3 || k[L.dk_size] > 20 || k[L.dk_log2_index_bytes] > 23) return false;
        if (k[L.dk_kind] == 1 && L.dk_unicode_entry_size != 0) {
            e.str_keys = true;
            e.size = L.dk_unicode_entry_size;
            e.key = L.dk_unicode_key;
            e.value = L.dk_unicode_value;
        } else if (k[L.dk_kind] != 0) {
            return false;
        }
        size = 1ull << k[L.dk_size];
        index_bytes = 1ull << k[L.dk_log2_index_bytes];
    } else {
        size = static_cast<uint64_t>(load_i64(k + L.dk_size));
        if (size < 8 || size > (1u << 20) || (size & (size - 1)) != 0) return false;
        index_bytes = size * (size <= 0xff ? 1 : size <= 0xffff ? 2 : 4);
    }
    const int64_t entries = load_i64(k + L.dk_nentries);
    if (entries < 0 || static_cast<uint64_t>(entries) > size || e.size == 0) return false;
    e.keys = keys;
    e.first = keys + L.dk_indices + index_bytes;
    e.n = std::min<size_t>(static_cast<size_t>(entries), cap / e.size);
    return e.n == 0 || reader.read(e.first, out, e.n * e.size);
}

}  // namespace spprof
