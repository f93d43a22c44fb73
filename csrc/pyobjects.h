// Readers of the small interpreter objects a symbol needs: str and bytes.
//
// Safety contract: the object is copied through a SafeReader; its type, size and kind are checked
// before any of its data is used, and every length is bounded, so a dead or garbage address gives
// false, never a fault. Used by the collector thread, without the GIL.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "layout.h"
#include "safe_read.h"

namespace spprof {

constexpr size_t kMaxStringChars = 4096;
constexpr size_t kMaxBytesLen = 1 << 20;

// A compact str object as UTF-8, lone surrogates as Python's "surrogatepass" writes them.
bool read_str(const spprof_layout& L, SafeReader& reader, uint64_t addr, std::string& out);
// A bytes object's contents.
bool read_bytes(const spprof_layout& L, SafeReader& reader, uint64_t addr, std::vector<uint8_t>& out);

// Decodes a str copied into `obj` (`len` bytes from its start). Exposed for the fuzz tests.
bool decode_str(const spprof_layout& L, const uint8_t* obj, size_t len, std::string& out, size_t& need);

}  // namespace spprof
