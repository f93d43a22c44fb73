// The identity of a code object, read from a copy of its header.
//
// Safety contract: pure functions over bytes already copied; they never touch live memory.
// A code object can die between a sample and its resolution and its address can be reused: the
// sampler and the collector compute the same fingerprint from their own copies, and a frame is
// named only when the two agree.
#pragma once

#include <cstdint>
#include <cstring>

#include "layout.h"

namespace spprof {

inline uint64_t load_u64(const uint8_t* p) { uint64_t v; std::memcpy(&v, p, sizeof v); return v; }
inline int32_t load_i32(const uint8_t* p) { int32_t v; std::memcpy(&v, p, sizeof v); return v; }
inline int64_t load_i64(const uint8_t* p) { int64_t v; std::memcpy(&v, p, sizeof v); return v; }

inline uint64_t mix64(uint64_t h, uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 29);
}

// `code` holds layout.co_size bytes copied from the code object.
inline bool is_code_object(const spprof_layout& L, const uint8_t* code) {
    return load_u64(code + L.ob_type) == L.code_type;
}

inline uint64_t code_fingerprint(const spprof_layout& L, const uint8_t* code) {
    uint64_t h = 0x73707072;
    h = mix64(h, static_cast<uint64_t>(load_i32(code + L.co_firstlineno)));
    h = mix64(h, load_u64(code + L.co_name));
    h = mix64(h, load_u64(code + L.co_filename));
    h = mix64(h, load_u64(code + L.co_linetable));
    if (L.co_qualname) h = mix64(h, load_u64(code + L.co_qualname));
    if (L.co_code) h = mix64(h, load_u64(code + L.co_code));
    return h;
}

}  // namespace spprof
