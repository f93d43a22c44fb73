// Helpers of the pybind11 modules: spprof._native, and spprof._bench that the benchmarks build.
//
// Safety contract: called with the GIL held.
#pragma once

#include <Python.h>
#include <pybind11/pybind11.h>

#include <exception>
#include <string>

namespace spprof {

[[noreturn]] inline void raise_os_error(const std::string& msg) {
    PyErr_SetString(PyExc_OSError, msg.c_str());
    throw pybind11::error_already_set();
}

// Runs `body` without the GIL. The GIL is taken back in this ordinary frame, never in a
// destructor: at interpreter exit CPython ends a daemon thread that takes the GIL back with
// pthread_exit, whose forced unwind calls std::terminate when it meets a noexcept frame (a scoped
// guard's destructor is one). Nothing holding a Python object may live in the frames it unwinds.
template <class Body>
void without_gil(Body&& body) {
    PyThreadState* ts = PyEval_SaveThread();
    std::exception_ptr failure;
    try {
        body();
    } catch (...) {
        failure = std::current_exception();
    }
    PyEval_RestoreThread(ts);
    if (failure) std::rethrow_exception(failure);
}

}  // namespace spprof
