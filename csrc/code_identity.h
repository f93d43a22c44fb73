// The identity of a code object, read from a copy of its header.
//
// Safety contract: pure functions over bytes already copied; they never touch live memory.
// A code object can die between a sample and its resolution and its address can be reused: the
// sampler and the collector compute the same fingerprint from their own copies, and a frame is
// named only when the two agree.
#pragma once

#include <cstdint>
#include <cstring>

#include "bytes.h"
#include "layout.h"

namespace spprof {

// How much of the name string the fingerprint reads where the code object has no co_version:
// up to 256 bytes, never past the end of the page holding its header, so the read cannot fail
// on a live string.
constexpr size_t kNameProbe = 256;
inline size_t name_probe_len(const spprof_layout& L, uint64_t addr) {
    return within_page(addr, kNameProbe, L.str_compact_data);
}

// Where the fingerprint needs the name string too: dead code objects, their names and line tables
// are freed together, and identical functions made with exec reuse all their addresses; only the
// name's contents tell them apart. co_version (3.12+) tells them apart too, until CPython's 32-bit
// counter of code objects is spent: every later code object has version 0, and needs the name.
inline bool fingerprint_needs_name(const spprof_layout& L, const uint8_t* code) {
    return L.co_version == 0 || load_i32(code + L.co_version) == 0;
}
inline uint64_t name_address(const spprof_layout& L, const uint8_t* code) {
    return load_u64(code + (L.co_qualname ? L.co_qualname : L.co_name));
}

// `code` holds layout.co_size bytes copied from the code object.
inline bool is_code_object(const spprof_layout& L, const uint8_t* code) {
    return load_u64(code + L.ob_type) == L.code_type;
}

// The length and characters of a name string copied with name_probe_len() bytes; only fields
// that never change in a live string (not its refcount, cached hash or UTF-8 cache).
inline uint64_t name_fingerprint(const spprof_layout& L, const uint8_t* name, size_t len) {
    uint64_t chars = load_u64(name + L.str_length);
    uint32_t state;
    std::memcpy(&state, name + L.str_state, sizeof state);
    bool ascii = (state & L.str_ascii_bit) != 0;
    uint64_t kind = (state & L.str_kind_mask) >> L.str_kind_shift;
    size_t start = ascii ? L.str_ascii_data : L.str_compact_data;
    uint64_t h = mix64(chars, kind + (ascii ? 8 : 0));
    size_t end = chars <= kNameProbe ? start + static_cast<size_t>(chars * (kind ? kind : 1)) : len;
    if (end > len) end = len;
    for (size_t i = start; i < end; i += 8) {
        uint64_t word = 0;
        std::memcpy(&word, name + i, end - i < 8 ? end - i : 8);
        h = mix64(h, word);
    }
    return h;
}

// `name` is the name string copied with name_probe_len() bytes where fingerprint_needs_name(),
// else null. The version, where there is one, and the first line are in it either way.
inline uint64_t code_fingerprint(const spprof_layout& L, const uint8_t* code, const uint8_t* name, size_t name_len) {
    uint64_t h = 0x73707072;
    if (L.co_version) h = mix64(h, static_cast<uint64_t>(static_cast<uint32_t>(load_i32(code + L.co_version))));
    if (name) h = mix64(h, name_fingerprint(L, name, name_len));
    h = mix64(h, static_cast<uint64_t>(load_i32(code + L.co_firstlineno)));
    h = mix64(h, load_u64(code + L.co_name));
    h = mix64(h, load_u64(code + L.co_filename));
    h = mix64(h, load_u64(code + L.co_linetable));
    if (L.co_qualname) h = mix64(h, load_u64(code + L.co_qualname));
    if (L.co_code) h = mix64(h, load_u64(code + L.co_code));
    return h;
}

}  // namespace spprof
