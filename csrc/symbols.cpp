#include "symbols.h"

#include "code_identity.h"
#include "linetable.h"
#include "pyobjects.h"

namespace spprof {

size_t SymbolTable::SiteHash::operator()(const Site& s) const {
    return static_cast<size_t>(mix64(mix64(s.code, s.fingerprint), static_cast<uint64_t>(s.instr)));
}

SymbolTable::SymbolTable(const spprof_layout& layout, SafeReader& reader, ProfileData& out)
    : L(layout), reader_(reader), out_(out), code_copy_(layout.co_size) {
    out_.symbols.push_back({"<unverified>", "", 0});
    out_.symbols.push_back({"<truncated>", "", 0});
    out_.symbols.push_back({"<unknown>", "", 0});
    unverified_frame_ = intern_frame(kUnverified, 0);
    truncated_frame_ = intern_frame(kTruncated, 0);
    unknown_frame_ = intern_frame(kUnknown, 0);
}

const SymbolTable::Resolved& SymbolTable::resolve(uint64_t code, uint64_t fingerprint) {
    Site key{code, fingerprint, 0};
    auto it = codes_.find(key);
    if (it != codes_.end()) return it->second;
    Resolved r{kUnverified, {}};
    if (fingerprint_of(code) == fingerprint) {
        const uint8_t* cb = code_copy_.data();
        Symbol s;
        bool ok = read_str(L, reader_, name_address(L, cb), s.name) &&
                  read_str(L, reader_, load_u64(cb + L.co_filename), s.filename) &&
                  read_bytes(L, reader_, load_u64(cb + L.co_linetable), r.linetable);
        s.firstlineno = load_i32(cb + L.co_firstlineno);
        // What was read after the fingerprint must still belong to it.
        if (ok && fingerprint_of(code) == fingerprint) {
            r.symbol = static_cast<uint32_t>(out_.symbols.size());
            out_.symbols.push_back(std::move(s));
        } else {
            r.linetable.clear();
        }
    }
    return codes_.emplace(key, std::move(r)).first->second;
}

// The fingerprint of the code object at `code` now, as the sampler computes it; 0 when unreadable.
uint64_t SymbolTable::fingerprint_of(uint64_t code) {
    const uint8_t* cb = code_copy_.data();
    if (!reader_.read(code, code_copy_.data(), L.co_size) || !is_code_object(L, cb)) return 0;
    if (!fingerprint_needs_name(L, cb)) return code_fingerprint(L, cb, nullptr, 0);
    uint64_t name = name_address(L, cb);
    size_t len = name_probe_len(L, name);
    if (!reader_.read(name, name_copy_, len)) return 0;
    return code_fingerprint(L, cb, name_copy_, len);
}

uint32_t SymbolTable::intern_frame(uint32_t symbol, int32_t line) {
    uint64_t key = (static_cast<uint64_t>(symbol) << 32) | static_cast<uint32_t>(line);
    auto it = frames_by_line_.find(key);
    if (it != frames_by_line_.end()) return it->second;
    uint32_t id = static_cast<uint32_t>(out_.frames.size());
    out_.frames.push_back({symbol, line});
    frames_by_line_.emplace(key, id);
    return id;
}

uint32_t SymbolTable::frame_for(uint64_t code, uint64_t fingerprint, int64_t instr_bytes) {
    Site key{code, fingerprint, instr_bytes};
    auto it = frames_by_instr_.find(key);
    if (it != frames_by_instr_.end()) return it->second;
    // 3.13+ runs a class's Python __init__ under a frame of its own code object: no function of
    // the program, though named "__init__" in a file "__init__" as a program's code may be too.
    if (L.init_cleanup_code != 0 && code == L.init_cleanup_code) return kHidden;
    const Resolved& r = resolve(code, fingerprint);
    uint32_t id;
    if (r.symbol == kUnverified) {
        ++unverified_;
        return unverified_frame_;
    }
    const Symbol& s = out_.symbols[r.symbol];
    int line = line_for_offset(L.linetable_format, r.linetable.data(), r.linetable.size(), s.firstlineno, instr_bytes);
    id = intern_frame(r.symbol, line < 0 ? s.firstlineno : line);
    frames_by_instr_.emplace(key, id);
    return id;
}

uint32_t SymbolTable::pseudo_frame(std::unordered_map<std::string, uint32_t>& memo, const std::string& key,
                                   std::string name, const char* file) {
    auto it = memo.find(key);
    if (it != memo.end()) return it->second;
    const uint32_t symbol = static_cast<uint32_t>(out_.symbols.size());
    out_.symbols.push_back({std::move(name), file, 0});
    const uint32_t id = intern_frame(symbol, 0);
    memo.emplace(key, id);
    return id;
}

uint32_t SymbolTable::task_frame(const std::string& name) { return pseudo_frame(task_frames_, name, name, kTaskFile); }

uint32_t SymbolTable::native_thread_frame(const std::string& name) {
    return pseudo_frame(native_frames_, name, "<native thread " + name + ">", "");
}

size_t SymbolTable::bytes_held() const {
    size_t n = codes_.size() * 96 + frames_by_line_.size() * 32 + frames_by_instr_.size() * 48 +
               (task_frames_.size() + native_frames_.size()) * 96;
    for (const auto& kv : codes_) n += kv.second.linetable.capacity();
    return n;
}

}  // namespace spprof
