// Speedscope JSON, written straight from the compact tables.
//
// Safety contract: called with the GIL released on a ProfileData no other thread changes.
#pragma once

#include <string>
#include <vector>

#include "profile_data.h"

namespace spprof {

// Writes the file-format of https://www.speedscope.app/file-format-schema.json to `path`, each
// thread's profile named by `thread_labels` (one per thread: Python builds them, so every format
// names a thread alike). Returns false with the errno in `error` when the file cannot be written. A lone surrogate in a
// name (three bytes, as "surrogatepass" writes it) becomes a \uXXXX escape: the JSON stays UTF-8.
bool write_speedscope(const ProfileData& data, const std::string& path, const std::string& name,
                      const std::string& exporter, const std::vector<std::string>& thread_labels, int& error);

}  // namespace spprof
