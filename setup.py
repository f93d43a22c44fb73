"""Builds spprof._native, the sampling engine, from csrc/ with pybind11.

The C++ headers come from Debian's libboost-dev and rapidjson-dev (ci/setup.sh installs them);
SPPROF_INCLUDE adds more folders to search, separated by ':'. SPPROF_BENCH=1 also builds
spprof._bench from bench/native/ (the engine driven piece by piece, for bench/): the benchmarks
need it, an installation for use does not.
"""
import os
import sys
from pathlib import Path

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent.resolve()

# one compiler a CPU (SPPROF_BUILD_JOBS=N to choose): a build is most of a CI run's setup
ParallelCompile("SPPROF_BUILD_JOBS").install()
CSRC = HERE / "csrc"


def header_dirs():
    extra = [p for p in os.environ.get("SPPROF_INCLUDE", "").split(":") if p]
    found = []
    for header in ("boost/lockfree/spsc_queue.hpp", "boost/asio/steady_timer.hpp", "rapidjson/writer.h"):
        for d in extra + ["/usr/include", "/usr/local/include"]:
            if (Path(d) / header).exists():
                if d not in found:
                    found.append(d)
                break
        else:
            sys.exit(
                f"spprof: cannot find <{header}>. Install Debian's libboost-dev and rapidjson-dev "
                "(bash ci/setup.sh does) or point SPPROF_INCLUDE at their folders."
            )
    return [d for d in found if d not in ("/usr/include", "/usr/local/include")]


class BuildExt(build_ext):
    """layout.c is C: CPython's internal headers do not all compile as C++."""

    def build_extensions(self):
        original = self.compiler._compile

        def compile_one(obj, src, ext, cc_args, extra_postargs, pp_opts):
            if src.endswith(".c"):
                extra_postargs = [a for a in extra_postargs if not a.startswith("-std=c++")
                                  and a not in ("-fvisibility-inlines-hidden",)] + ["-std=c11"]
                # a macro one version lacks would otherwise link as a missing function
                extra_postargs += ["-Werror=implicit-function-declaration"]
            original(obj, src, ext, cc_args, extra_postargs, pp_opts)

        self.compiler._compile = compile_one
        super().build_extensions()


class BuildPy(build_py):
    """spprof-auto.pth goes beside the package, where `site` runs it at every start: it imports
    spprof.auto (continuous profiling from the environment) only when SPPROF_PUSH_URL or
    SPPROF_OUTPUT_DIR is set, and costs nothing else."""

    def run(self):
        super().run()
        self.copy_file(str(HERE / "spprof-auto.pth"), os.path.join(self.build_lib, "spprof-auto.pth"))


def extension(name, sources):
    return Pybind11Extension(
        name,
        sources,
        include_dirs=[str(CSRC)] + header_dirs(),
        cxx_std=17,
        define_macros=[("BOOST_ASIO_NO_DEPRECATED", "1")],
        extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers", "-Wno-unused-parameter"],
        extra_link_args=["-pthread"],
    )


def relative(paths):
    return sorted(str(p.relative_to(HERE)) for p in paths)


engine = relative(p for p in CSRC.glob("*.c*") if p.name != "module.cpp")
extensions = [extension("spprof._native", engine + ["csrc/module.cpp"])]
if os.environ.get("SPPROF_BENCH") == "1":
    extensions.append(extension("spprof._bench", engine + relative((HERE / "bench" / "native").glob("*.cpp"))))

setup(ext_modules=extensions, cmdclass={"build_ext": BuildExt, "build_py": BuildPy})
