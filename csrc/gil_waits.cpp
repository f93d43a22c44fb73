#include "gil_waits.h"

namespace spprof {

namespace {
constexpr size_t kSeen = 256;  // a power of two
}

GilWaits::GilWaits(const spprof_layout& layout, SafeReader& reader)
    : L(layout), reader_(reader), seen_(layout.n_handover_ops > 0 ? kSeen : 0) {}

bool GilWaits::at_handover(const FrameRecord& f) {
    if (seen_.empty() || f.instr_bytes < 0) return false;
    const uint64_t key = (f.code >> 4) ^ (static_cast<uint64_t>(f.instr_bytes) * 0x9E3779B97F4A7C15ull);
    Entry& e = seen_[(key * 0x9E3779B97F4A7C15ull >> 56) & (kSeen - 1)];
    if (e.code == f.code && e.fingerprint == f.fingerprint && e.instr == f.instr_bytes) return e.handover;
    uint8_t op = 0;
    if (!reader_.read(f.code + L.co_code_adaptive + static_cast<uint64_t>(f.instr_bytes), &op, 1)) return false;
    bool handover = false;
    for (int k = 0; k < L.n_handover_ops; ++k) handover = handover || op == L.handover_ops[k];
    e = Entry{f.code, f.fingerprint, f.instr_bytes, handover};
    return handover;
}

}  // namespace spprof
