#include "linetable.h"

#include "layout.h"

namespace spprof {

namespace {

// Lines are summed in 64 bits: co_firstlineno can be anything up to INT_MAX (code.replace() allows
// it) and a table's deltas can be large, so an int sum could overflow (undefined behaviour). A
// line outside int is reported as none.
int as_line(int64_t line) { return line < INT32_MIN || line > INT32_MAX ? -1 : static_cast<int>(line); }

// 3.9 co_lnotab: (byte increment, signed line increment) pairs.
int lnotab_line(const uint8_t* t, size_t len, int64_t line, int64_t offset) {
    int64_t addr = 0;
    for (size_t i = 0; i + 1 < len; i += 2) {
        addr += t[i];
        if (addr > offset) break;
        line += static_cast<int8_t>(t[i + 1]);
    }
    return as_line(line);
}

// 3.10 co_linetable (PEP 626): (byte length, signed line delta or -128 for none) pairs.
int linetable310_line(const uint8_t* t, size_t len, int64_t line, int64_t offset) {
    int64_t end = 0;
    int64_t current = -1;
    for (size_t i = 0; i + 1 < len; i += 2) {
        int64_t start = end;
        end += t[i];
        int8_t delta = static_cast<int8_t>(t[i + 1]);
        if (delta != -128) {
            line += delta;
            current = line;
        } else {
            current = -1;
        }
        if (start <= offset && offset < end) return as_line(current);
    }
    return -1;
}

// 3.11+ location table: entries of code units with varint-coded line deltas.
struct Reader {
    const uint8_t* t;
    size_t len;
    size_t i;
    bool ok = true;
    uint8_t byte() {
        if (i >= len) { ok = false; return 0; }
        return t[i++];
    }
    uint32_t varint() {
        uint8_t b = byte();
        uint32_t v = b & 63u;
        unsigned shift = 0;
        while (ok && (b & 64u) && shift < 26) {
            b = byte();
            shift += 6;
            v |= static_cast<uint32_t>(b & 63u) << shift;
        }
        return v;
    }
    int32_t svarint() {
        uint32_t v = varint();
        return (v & 1u) ? -static_cast<int32_t>(v >> 1) : static_cast<int32_t>(v >> 1);
    }
};

int locations_line(const uint8_t* t, size_t len, int64_t line, int64_t offset) {
    const int64_t unit = offset / 2;
    Reader r{t, len, 0};
    int64_t addr = 0;
    while (r.ok && r.i < len) {
        uint8_t first = r.byte();
        if (!(first & 0x80)) return -1;  // every entry starts with its high bit set
        int code = (first >> 3) & 15;
        int64_t end = addr + (first & 7) + 1;
        int64_t result = line;
        switch (code) {
            case 15: result = -1; break;                      // no location
            case 14:                                          // long form
                line += r.svarint(); result = line;
                r.varint(); r.varint(); r.varint();
                break;
            case 13: line += r.svarint(); result = line; break;  // no column
            case 12: case 11: case 10:                        // one line, delta in the code
                line += code - 10; result = line;
                r.byte(); r.byte();
                break;
            default: r.byte(); break;                          // short form, same line
        }
        if (!r.ok) return -1;
        if (addr <= unit && unit < end) return as_line(result);
        addr = end;
    }
    return -1;
}

}  // namespace

int line_for_offset(int format, const uint8_t* table, size_t len, int firstlineno, int64_t offset) {
    if (offset < 0) return firstlineno;
    switch (format) {
        case SPPROF_LNOTAB: return lnotab_line(table, len, firstlineno, offset);
        case SPPROF_LINETABLE: return linetable310_line(table, len, firstlineno, offset);
        case SPPROF_LOCATIONS: return locations_line(table, len, firstlineno, offset);
        default: return -1;
    }
}

}  // namespace spprof
