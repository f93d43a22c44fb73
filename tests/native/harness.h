// Shared helpers of the native checks (engine_tsan.cpp, fuzz_readers.cpp): an embedded
// interpreter, a seeded random generator, checks that end the program with a message.
//
// These programs link the engine's own sources from csrc/ (not the pybind11 module) against the
// interpreter's libpython; ci/native_checks.sh builds and runs them.
#pragma once

#include <Python.h>

#include <time.h>

#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#ifndef SPPROF_PYHOME
#error "build with -DSPPROF_PYHOME=\"<the interpreter's prefix>\" (ci/native_checks.sh does)"
#endif

namespace harness {

[[noreturn]] inline void fail(const char* file, int line, const char* what, const std::string& detail) {
    std::fprintf(stderr, "\nCHECK FAILED at %s:%d: %s\n  %s\n", file, line, what, detail.c_str());
    std::fflush(stderr);
    std::_Exit(2);
}

#define CHECK(cond, detail)                                                             \
    do {                                                                                \
        if (!(cond)) ::harness::fail(__FILE__, __LINE__, #cond, (detail));              \
    } while (0)

inline std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
inline std::string fmt(const char* f, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, f);
    std::vsnprintf(buf, sizeof buf, f, ap);
    va_end(ap);
    return buf;
}

inline uint64_t now_ns() {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return static_cast<uint64_t>(t.tv_sec) * 1000000000ull + static_cast<uint64_t>(t.tv_nsec);
}

// xoshiro256**, seeded by splitmix64: reproducible from one 64-bit seed.
struct Rng {
    uint64_t s[4];
    explicit Rng(uint64_t seed) {
        for (auto& w : s) {
            seed += 0x9e3779b97f4a7c15ull;
            uint64_t z = seed;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
            w = z ^ (z >> 31);
        }
    }
    static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    uint64_t next() {
        uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
        s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
        s[2] ^= t; s[3] = rotl(s[3], 45);
        return r;
    }
    uint64_t below(uint64_t n) { return n ? next() % n : 0; }
    bool chance(unsigned percent) { return below(100) < percent; }
    template <class T> const T& pick(const std::vector<T>& v) { return v[below(v.size())]; }
};

// Starts the interpreter this program was built against, wherever the program lives.
inline void start_python() {
    setenv("PYTHONHOME", SPPROF_PYHOME, 1);
    setenv("PYTHONDONTWRITEBYTECODE", "1", 1);
    Py_Initialize();
}

inline void run_python(const char* code) {
    if (PyRun_SimpleString(code) != 0) fail(__FILE__, __LINE__, "PyRun_SimpleString", code);
}

// A global of __main__ (a new reference), with the GIL held.
inline PyObject* main_global(const char* name) {
    PyObject* m = PyImport_AddModule("__main__");
    PyObject* v = m ? PyObject_GetAttrString(m, name) : nullptr;
    if (!v) {
        PyErr_Print();
        fail(__FILE__, __LINE__, "main_global", name);
    }
    return v;
}

}  // namespace harness
