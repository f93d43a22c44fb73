// spprof_layout_check(), the check start() runs after filling the layout: it must pass on the real
// layout, accept a field that ends exactly at the end of its copy, and refuse (naming the field)
// one that reaches a byte past it. Its message is the one start() raises as OSError.
#pragma once

#include <cstring>
#include <iterator>
#include <string>
#include <vector>

#include "harness.h"
#include "layout.h"

namespace harness {

inline void check_layout_bounds(const spprof_layout& real) {
    char err[512] = {0};
    CHECK(spprof_layout_check(&real, err, sizeof err) == 0, err);
    // Fields every version reads, and those of its own frame model; the copy each is read from.
    struct Case { const char* name; uint32_t spprof_layout::*field; uint32_t width; uint32_t spprof_layout::*copy; };
    const Case common[] = {
        {"interp_threads_head", &spprof_layout::interp_threads_head, 8, &spprof_layout::interp_size},
        {"gil_locked", &spprof_layout::gil_locked, 4, &spprof_layout::gil_size},
        {"gil_switch_number", &spprof_layout::gil_switch_number, 8, &spprof_layout::gil_size},
        {"ts_frame", &spprof_layout::ts_frame, 8, &spprof_layout::ts_size},
        {"ts_thread_id", &spprof_layout::ts_thread_id, 8, &spprof_layout::ts_size},
        {"co_firstlineno", &spprof_layout::co_firstlineno, 4, &spprof_layout::co_size},
        {"co_filename", &spprof_layout::co_filename, 8, &spprof_layout::co_size},
        {"str_state", &spprof_layout::str_state, 4, &spprof_layout::str_compact_data},
    };
    const Case objects[] = {
        {"fo_state", &spprof_layout::fo_state, 1, &spprof_layout::fo_copy},
        {"fo_lasti", &spprof_layout::fo_lasti, 4, &spprof_layout::fo_copy},
        {"fo_back", &spprof_layout::fo_back, 8, &spprof_layout::fo_copy},
    };
    const Case interpreter[] = {
        {"if_owner", &spprof_layout::if_owner, 1, &spprof_layout::if_size},
        {"if_instr", &spprof_layout::if_instr, 8, &spprof_layout::if_size},
        {"chunk_previous", &spprof_layout::chunk_previous, 8, &spprof_layout::chunk_header},
        {"ts_datastack_limit", &spprof_layout::ts_datastack_limit, 8, &spprof_layout::ts_size},
    };
    std::vector<Case> cases(std::begin(common), std::end(common));
    if (real.frame_model == SPPROF_FRAMES_OBJECTS) cases.insert(cases.end(), std::begin(objects), std::end(objects));
    else cases.insert(cases.end(), std::begin(interpreter), std::end(interpreter));
    if (real.frame_model == SPPROF_FRAMES_CFRAME)
        cases.push_back({"cframe_current_frame", &spprof_layout::cframe_current_frame, 8, &spprof_layout::cframe_size});
    for (const Case& c : cases) {
        const uint32_t size = real.*c.copy;
        CHECK(size >= c.width, fmt("%s: its copy has %u bytes", c.name, size));
        spprof_layout l = real;
        l.*c.field = size - c.width;  // its last byte is the copy's last byte
        CHECK(spprof_layout_check(&l, err, sizeof err) == 0, fmt("%s at the end of its copy refused: %s", c.name, err));
        l.*c.field = size - c.width + 1;  // one byte past the copy
        err[0] = 0;
        CHECK(spprof_layout_check(&l, err, sizeof err) != 0, fmt("%s one byte past its copy accepted", c.name));
        CHECK(std::strstr(err, "interpreter layout unusable") != nullptr && std::strstr(err, c.name) != nullptr,
              fmt("%s: the message does not name it: %s", c.name, err));
    }
    // The frame copy of 3.9/3.10 must lie inside the frame object.
    if (real.frame_model == SPPROF_FRAMES_OBJECTS) {
        spprof_layout l = real;
        l.fo_copy = l.fo_size + 1;
        CHECK(spprof_layout_check(&l, err, sizeof err) != 0 && std::strstr(err, "fo_copy") != nullptr,
              "a frame copy longer than the frame object accepted");
    }
    std::printf("layout check: %zu fields refused one byte past their copies\n", cases.size());
}

}  // namespace harness
