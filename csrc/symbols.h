// Resolution of sampled code objects to names, files and lines.
//
// Safety contract: runs on the collector thread without the GIL. A code object is re-read
// through SafeReader and named only when its fingerprint matches the one the sampler took;
// otherwise its frames are reported as "<unverified>" and counted.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "code_identity.h"
#include "layout.h"
#include "profile_data.h"
#include "safe_read.h"

namespace spprof {

class SymbolTable {
public:
    static constexpr uint32_t kUnverified = 0;
    static constexpr uint32_t kTruncated = 1;
    static constexpr uint32_t kUnknown = 2;

    SymbolTable(const spprof_layout& layout, SafeReader& reader, ProfileData& out);
    // The frame id for a code object (with the sampler's fingerprint) at an instruction offset;
    // kHidden for the interpreter's own trampolines, which are no function of the program.
    static constexpr uint32_t kHidden = 0xFFFFFFFFu;
    uint32_t frame_for(uint64_t code, uint64_t fingerprint, int64_t instr_bytes);
    // The frame that stands for an asyncio task of this name, above its coroutine's frames.
    uint32_t task_frame(const std::string& name);
    uint32_t truncated_frame() const { return truncated_frame_; }
    uint32_t unknown_frame() const { return unknown_frame_; }
    // The pseudo-frame "<native thread NAME>" that stands for the CPU of a thread Python does not know.
    uint32_t native_thread_frame(const std::string& name);
    uint64_t unverified() const { return unverified_; }
    size_t bytes_held() const;

private:
    struct Resolved {
        uint32_t symbol;
        std::vector<uint8_t> linetable;
    };
    struct Site {
        uint64_t code, fingerprint;
        int64_t instr;
        bool operator==(const Site& o) const { return code == o.code && fingerprint == o.fingerprint && instr == o.instr; }
    };
    struct SiteHash { size_t operator()(const Site& s) const; };
    const Resolved& resolve(uint64_t code, uint64_t fingerprint);
    uint32_t intern_frame(uint32_t symbol, int32_t line);
    // A frame that stands for something other than code (a task, a native thread), one per key.
    uint32_t pseudo_frame(std::unordered_map<std::string, uint32_t>& memo, const std::string& key, std::string name,
                          const char* file);
    uint64_t fingerprint_of(uint64_t code);

    const spprof_layout& L;
    SafeReader& reader_;
    ProfileData& out_;
    std::vector<uint8_t> code_copy_;
    uint8_t name_copy_[kNameProbe];
    std::unordered_map<Site, Resolved, SiteHash> codes_;  // instr unused: 0
    std::unordered_map<uint64_t, uint32_t> frames_by_line_;                  // (symbol, line)
    std::unordered_map<Site, uint32_t, SiteHash> frames_by_instr_;
    std::unordered_map<std::string, uint32_t> native_frames_;  // by thread name
    uint32_t unverified_frame_, truncated_frame_, unknown_frame_;
    std::unordered_map<std::string, uint32_t> task_frames_;
    uint64_t unverified_ = 0;
};

}  // namespace spprof
