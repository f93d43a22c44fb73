#include "speedscope.h"

#include <errno.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include <rapidjson/filewritestream.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace spprof {

namespace {

template <class W>
void key(W& w, const char* k) { w.Key(k, static_cast<rapidjson::SizeType>(std::strlen(k))); }

bool is_surrogate_at(const std::string& s, size_t i) {
    return i + 2 < s.size() && static_cast<unsigned char>(s[i]) == 0xED && (static_cast<unsigned char>(s[i + 1]) & 0xE0) == 0xA0;
}

template <class W>
void str(W& w, const std::string& s) {
    size_t i = 0;
    while (i < s.size() && !is_surrogate_at(s, i)) ++i;
    if (i == s.size()) {
        w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
        return;
    }
    // RapidJSON would copy the surrogate's bytes as they are: escape the runs between them.
    std::string json = "\"";
    size_t run = 0;
    for (i = 0; i <= s.size(); ++i) {
        const bool surrogate = i < s.size() && is_surrogate_at(s, i);
        if (i < s.size() && !surrogate) continue;
        rapidjson::StringBuffer buf;
        rapidjson::Writer<rapidjson::StringBuffer> one(buf);
        one.String(s.data() + run, static_cast<rapidjson::SizeType>(i - run));
        json.append(buf.GetString() + 1, buf.GetSize() - 2);  // without its quotes
        if (!surrogate) break;
        const unsigned cp = ((static_cast<unsigned char>(s[i]) & 0x0F) << 12) |
                            ((static_cast<unsigned char>(s[i + 1]) & 0x3F) << 6) | (static_cast<unsigned char>(s[i + 2]) & 0x3F);
        char esc[8];
        std::snprintf(esc, sizeof esc, "\\u%04x", cp);
        json += esc;
        i += 2;
        run = i + 1;
    }
    json += '"';
    w.RawValue(json.data(), json.size(), rapidjson::kStringType);
}

}  // namespace

bool write_speedscope(const ProfileData& d, const std::string& path, const std::string& name,
                      const std::string& exporter, const std::vector<std::string>& thread_labels, int& error) {
    FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr) {
        error = errno;
        return false;
    }
    std::vector<char> buffer(1 << 16);
    rapidjson::FileWriteStream os(f, buffer.data(), buffer.size());
    rapidjson::Writer<rapidjson::FileWriteStream> w(os);

    // Samples of each thread, in time order (the collector appends in time order per thread).
    std::vector<std::vector<uint32_t>> by_thread(d.threads.size());
    for (uint32_t i = 0; i < d.samples.size(); ++i) by_thread[d.samples[i].thread].push_back(i);
    const uint64_t end = d.end_ns > d.start_ns ? d.end_ns - d.start_ns : 0;

    w.StartObject();
    key(w, "$schema"); w.String("https://www.speedscope.app/file-format-schema.json");
    key(w, "name"); str(w, name);
    key(w, "exporter"); str(w, exporter);
    key(w, "activeProfileIndex"); w.Uint(0);
    key(w, "shared"); w.StartObject();
    key(w, "frames"); w.StartArray();
    for (const FrameEntry& fr : d.frames) {
        const Symbol& s = d.symbols[fr.symbol];
        w.StartObject();
        key(w, "name"); str(w, s.name);
        if (!s.filename.empty()) {
            key(w, "file"); str(w, s.filename);
            key(w, "line"); w.Int(fr.line);
        }
        w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    key(w, "profiles"); w.StartArray();
    for (size_t t = 0; t < d.threads.size(); ++t) {
        w.StartObject();
        key(w, "type"); w.String("sampled");
        key(w, "name"); str(w, thread_labels[t]);
        key(w, "unit"); w.String("nanoseconds");
        key(w, "startValue"); w.Uint64(0);
        key(w, "endValue"); w.Uint64(end);
        key(w, "samples"); w.StartArray();
        for (uint32_t i : by_thread[t]) {
            const SampleEntry& s = d.samples[i];
            w.StartArray();
            for (uint32_t k = d.stack_offsets[s.stack]; k < d.stack_offsets[s.stack + 1]; ++k) w.Uint(d.stack_frames[k]);
            w.EndArray();
        }
        w.EndArray();
        key(w, "weights"); w.StartArray();
        for (uint32_t i : by_thread[t]) w.Uint64(d.samples[i].weight_ns);
        w.EndArray();
        w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    os.Flush();
    bool ok = !std::ferror(f);
    int saved = errno;
    if (std::fclose(f) != 0 && ok) { ok = false; saved = errno; }
    if (!ok) error = saved ? saved : EIO;
    return ok;
}

}  // namespace spprof
