// Reading values out of bytes copied from interpreter memory, and the hash mix used over them.
//
// Safety contract: pure functions over bytes already copied; they never touch live memory.
#pragma once

#include <cstdint>
#include <cstring>

namespace spprof {

// memcpy, not a cast: a copy's fields need not be aligned.
inline uint64_t load_u64(const uint8_t* p) { uint64_t v; std::memcpy(&v, p, sizeof v); return v; }
inline int32_t load_i32(const uint8_t* p) { int32_t v; std::memcpy(&v, p, sizeof v); return v; }
inline int64_t load_i64(const uint8_t* p) { int64_t v; std::memcpy(&v, p, sizeof v); return v; }

inline uint64_t mix64(uint64_t h, uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 29);
}

// The end of user space on x86-64 and aarch64: a pointer read from a copy at or above it is torn.
constexpr uint64_t kMaxAddr = 0x0000800000000000ull;

// A pointer read from a copy that could point at an object: non-null, aligned, in user space.
inline bool plausible(uint64_t p) { return p != 0 && (p & 7) == 0 && p < kMaxAddr; }

// Bytes to read at `addr` for an object whose first `at_least` bytes are needed and up to `want`
// are useful: never past the end of the page holding its start, so a read of a live object's
// head cannot fail for reading too far.
inline size_t within_page(uint64_t addr, size_t want, size_t at_least) {
    const size_t to_page_end = 4096 - static_cast<size_t>(addr & 4095);
    const size_t n = to_page_end < want ? to_page_end : want;
    return n < at_least ? at_least : n;
}

}  // namespace spprof
