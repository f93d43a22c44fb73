// Decoders of CPython's line tables: instruction offset -> line number.
//
// Safety contract: pure functions over a copied byte buffer of any content; every index is
// bounds-checked, so random or truncated input gives -1, never a read outside the buffer.
#pragma once

#include <cstddef>
#include <cstdint>

namespace spprof {

// `format` is a spprof_linetable_format; `offset` is in bytes (-1: before the first instruction).
// Returns the line, or -1 where the table has none.
int line_for_offset(int format, const uint8_t* table, size_t len, int firstlineno, int64_t offset);

}  // namespace spprof
