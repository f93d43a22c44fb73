// Readers of the small interpreter objects a symbol needs (str and bytes), and of a dict's entries.
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

// A compact str's shape, from a copy of at least its first L.str_compact_data bytes: where its
// characters start, how many there are and their width (1, 2 or 4 bytes). False when it is no
// compact str or has more than kMaxStringChars characters.
struct StrShape { size_t data; size_t chars; uint32_t kind; bool ascii; };
bool str_shape(const spprof_layout& L, const uint8_t* head, StrShape& out);
// Character `i` of a str's characters, `kind` bytes each.
uint32_t str_char(const uint8_t* chars, uint32_t kind, size_t i);
// One character as UTF-8 in `out`, a lone surrogate as Python's "surrogatepass" writes it; the
// number of bytes.
size_t utf8_encode(uint32_t cp, char out[4]);

// A dict's entries as its keys object lays them out: the keys object, the entries' address, how
// many were copied, the bytes of one and where its key and value lie in it. str_keys: 3.11+'s
// table of str keys only, whose entries are smaller.
struct DictEntries { uint64_t keys = 0, first = 0; size_t n = 0; uint32_t size = 0, key = 0, value = 0; bool str_keys = false; };
// Copies the entries of the dict at `dict`, as many as `cap` bytes hold, into `out`. False when it
// cannot be read, keeps its values apart (a split table) or its keys' header is no dict's.
bool read_dict_entries(const spprof_layout& L, SafeReader& reader, uint64_t dict, uint8_t* out, size_t cap,
                       DictEntries& e);

// Decodes a str copied into `obj` (`len` bytes from its start). Exposed for the fuzz tests.
bool decode_str(const spprof_layout& L, const uint8_t* obj, size_t len, std::string& out, size_t& need);

}  // namespace spprof
