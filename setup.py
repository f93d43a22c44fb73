"""Builds spprof._native, the sampling engine, from csrc/ with pybind11.

The C++ headers come from Debian's libboost-dev and rapidjson-dev (ci/setup.sh installs them);
SPPROF_INCLUDE adds more folders to search, separated by ':'.
"""
import os
import sys
from pathlib import Path

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent.resolve()
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


sources = sorted(str(p.relative_to(HERE)) for p in CSRC.glob("*.c*"))
ext = Pybind11Extension(
    "spprof._native",
    sources,
    include_dirs=[str(CSRC)] + header_dirs(),
    cxx_std=17,
    define_macros=[("BOOST_ASIO_NO_DEPRECATED", "1")],
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers", "-Wno-unused-parameter"],
    extra_link_args=["-pthread"],
)

setup(ext_modules=[ext], cmdclass={"build_ext": BuildExt, "build_py": BuildPy})
