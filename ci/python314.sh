#!/usr/bin/env bash
# ci/python314.sh — provide a CPython 3.14 interpreter (with headers, incl.
# internal/pycore_*.h) on a Debian 12/13 host by unpacking Debian *sid*'s
# packages into a private cache, without touching the system's apt sources,
# apt state or /usr.
#
#   PY314=$(bash ci/python314.sh)     # last stdout line: the venv's python
#
# Layout (CACHE defaults to ${SPPROF_CACHE:-$HOME/.cache/spprof}/python3.14,
# override with SPPROF_PY314_CACHE; SPPROF_PY314_SUITE overrides "sid"):
#   $CACHE/apt/      private sources.list, apt lists and .deb cache
#   $CACHE/root/     all .debs unpacked with dpkg-deb -x (usr/bin/python3.14 ...)
#   $CACHE/venv314/  venv made with the unpacked interpreter
#
# How it works: sid's python3.14 needs sid's glibc (>= 2.42), so the unpacked
# binary gets sid's own ld-linux as ELF interpreter and a DT_RPATH (not
# RUNPATH: RPATH of the executable is also searched for the dependencies of
# dlopen'ed extension modules and of libssl/libcrypto etc.) pointing at the
# unpacked lib folder. CPython finds its stdlib relative to the binary, so no
# env vars or wrapper are needed. All progress goes to stderr.
set -euo pipefail

# Everything but the final path goes to stderr; fd 3 is the real stdout.
exec 3>&1 1>&2

log() { printf '[python314 %4ss] %s\n' "$SECONDS" "$*" >&2; }
die() { printf '[python314] ERROR: %s\n' "$*" >&2; exit 1; }

STAMP_VERSION=1   # bump to force a fresh download + full re-check everywhere
SUITE=${SPPROF_PY314_SUITE:-sid}   # Debian suite to take python3.14 from
CACHE=${SPPROF_PY314_CACHE:-${SPPROF_CACHE:-$HOME/.cache/spprof}/python3.14}
mkdir -p "$CACHE" && CACHE=$(cd "$CACHE" && pwd -P)
ROOT=$CACHE/root
VENV=$CACHE/venv314
VPY=$VENV/bin/python
OK_STAMP=$CACHE/.ok

# Quick health check of the venv: interpreter runs, key extension modules
# import, pip is there and the headers (incl. internal ones) are in place.
venv_healthy() {
    [[ -x $VPY ]] || return 1
    "$VPY" - <<'EOF' >/dev/null 2>&1
import os, sysconfig, ssl, ctypes, sqlite3, hashlib, zlib, json, threading
import pip
inc = sysconfig.get_paths()["include"]
assert os.path.isfile(os.path.join(inc, "Python.h"))
assert os.path.isfile(os.path.join(inc, "internal", "pycore_frame.h"))
EOF
}

# ---- 0. fast path: a previous run fully verified this venv -------------------
fast_exit() {
    if [[ -f $OK_STAMP && "$(cat "$OK_STAMP")" == "$STAMP_VERSION $ROOT" ]] && venv_healthy; then
        echo "$VPY" >&3
        exit 0
    fi
}
fast_exit

for t in apt-get apt-cache dpkg dpkg-deb flock; do
    command -v "$t" >/dev/null || die "needs a Debian host: $t not found"
done
# One run at a time per cache (CI jobs may share $HOME); re-check after the
# wait, another run may just have finished the job.
exec 9>"$CACHE/.lock"
flock 9 || die "cannot lock $CACHE/.lock"
fast_exit
rm -f "$OK_STAMP"
T0=$SECONDS

# Debian arch -> multiarch triplet + dynamic loader name.
DEB_ARCH=$(dpkg --print-architecture)
case $DEB_ARCH in
    amd64) MA=x86_64-linux-gnu;  LDSO=ld-linux-x86-64.so.2 ;;
    arm64) MA=aarch64-linux-gnu; LDSO=ld-linux-aarch64.so.1 ;;
    *) die "unsupported architecture $DEB_ARCH" ;;
esac
LIBDIR=$ROOT/usr/lib/$MA

# ---- 1. host tools (only patchelf and a C/C++ compiler, from the host's own
#         apt sources; `apt-get update` only if the install fails) ----------
need_pkgs=()
command -v patchelf >/dev/null || need_pkgs+=(patchelf)
command -v g++ >/dev/null || need_pkgs+=(g++)
if ((${#need_pkgs[@]})); then
    log "installing host packages: ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${need_pkgs[@]}" >&2 \
        || { apt-get update -q >&2 && apt-get install -y -q "${need_pkgs[@]}" >&2; } \
        || die "apt-get install ${need_pkgs[*]} failed"
fi

# ---- 2. private apt for $SUITE -----------------------------------------------
APT=$CACHE/apt
mkdir -p "$APT/etc/sources.list.d" "$APT/etc/preferences.d" \
         "$APT/state/lists/partial" "$APT/cache/archives/partial" "$APT/debs"
echo "deb http://deb.debian.org/debian $SUITE main" > "$APT/etc/sources.list"
: > "$APT/etc/preferences"
[[ -f $APT/state/status ]] || : > "$APT/state/status"
# The host's apt.conf.d may hold hooks (PackageKit, appstreamcli refresh,
# docker-clean) that act on the *system* on every update: APT_CONFIG names a
# file read first, whose Dir::Etc::main is read after apt.conf.d and #clears
# them (proxies etc. from the host config still apply).
{
    [[ -f /etc/apt/apt.conf ]] && echo '#include "/etc/apt/apt.conf";'
    for h in APT::Update::Pre-Invoke APT::Update::Post-Invoke \
             APT::Update::Post-Invoke-Success DPkg::Pre-Invoke DPkg::Post-Invoke \
             DPkg::Pre-Install-Pkgs; do echo "#clear $h;"; done
} > "$APT/etc/apt-late.conf"
echo "Dir::Etc::main \"$APT/etc/apt-late.conf\";" > "$APT/etc/apt.conf"
export APT_CONFIG=$APT/etc/apt.conf
# Own lists/cache/status (=> own locks; the system's /var/lib/apt,
# /var/cache/apt and dpkg lock are never used); the host's pins don't apply;
# keep a binary cache and plain lists (docker images disable/gzip them, making
# each apt-cache call re-parse sid); run as root since _apt may not read $HOME.
APT_OPTS=(
    -o "Dir::Etc::SourceList=$APT/etc/sources.list"
    -o "Dir::Etc::SourceParts=$APT/etc/sources.list.d"
    -o "Dir::Etc::Preferences=$APT/etc/preferences"
    -o "Dir::Etc::PreferencesParts=$APT/etc/preferences.d"
    -o "Dir::State=$APT/state"
    -o "Dir::State::status=$APT/state/status"
    -o "Dir::Cache=$APT/cache"
    -o "Dir::Cache::pkgcache=pkgcache.bin"
    -o "Dir::Cache::srcpkgcache=srcpkgcache.bin"
    -o "APT::Architecture=$DEB_ARCH"
    -o "APT::Default-Release="
    -o "APT::Sandbox::User=root"
    -o "Acquire::Languages=none"
    -o "Acquire::GzipIndexes=false"
    -q
)
sid_candidate() {  # prints the sid version of $1, empty if none/virtual
    apt-cache "${APT_OPTS[@]}" policy "$1" 2>/dev/null \
        | awk '$1=="Candidate:" && $2!="(none)" {print $2}'
}
pick() {  # first of the given names that sid really has
    local p
    for p in "$@"; do
        [[ -n $(sid_candidate "$p") ]] && { echo "$p"; return 0; }
    done
    return 1
}
sid_lib_deps() {  # Depends/Pre-Depends of the given packages: first
                  # alternatives, lib* runtime packages only (one apt call)
    apt-cache "${APT_OPTS[@]}" show --no-all-versions "$@" 2>/dev/null \
        | awk -F': ' '/^(Pre-)?Depends:/ {print $2}' | tr ',' '\n' \
        | sed -E 's/\|.*//; s/\(.*\)//; s/:any//; s/[[:space:]]//g' \
        | grep -E '^lib' | grep -vE -- '-(dev|bin)$' | sort -u || true
}

# $ROOT/.unpacked records what was unpacked (first line: stamp and suite).
if [[ "$(head -n1 "$ROOT/.unpacked" 2>/dev/null)" != "$STAMP_VERSION $SUITE" ]]; then
    log "apt-get update (private $SUITE lists in $APT)"
    apt-get "${APT_OPTS[@]}" update >&2 || die "apt-get update for $SUITE failed"

    # The interpreter, its stdlib, shared lib, headers and the ensurepip wheels.
    pkgs=(python3.14 python3.14-minimal libpython3.14-minimal libpython3.14-stdlib
          libpython3.14 libpython3.14-dev python3.14-dev)
    for p in "${pkgs[@]}"; do
        [[ -n $(sid_candidate "$p") ]] || die "$SUITE has no package $p (is python3.14 still in $SUITE? try SPPROF_PY314_SUITE=...)"
    done
    for p in python3.14-venv python3-pip-whl python3-setuptools-whl; do
        if [[ -n $(sid_candidate "$p") ]]; then pkgs+=("$p"); fi
    done
    # Runtime libs (sid's names; t64 renames tried first), then the lib*
    # closure of their Depends, so that nothing is taken from the host.
    libs=()
    for alts in libc6 libgcc-s1 "libstdc++6" libexpat1 zlib1g libffi8 \
                "libssl3t64 libssl3" libsqlite3-0 "libbz2-1.0" liblzma5 \
                "libmpdec4 libmpdec3" libzstd1 libuuid1 libncursesw6 libtinfo6 \
                "libreadline8t64 libreadline8" "libgdbm6t64 libgdbm6" \
                "libdb5.3t64 libdb5.3" libcrypt1; do
        # shellcheck disable=SC2086
        p=$(pick $alts) || { log "note: sid has none of: $alts"; continue; }
        libs+=("$p")
    done
    declare -A seen=()
    all=() level=("${pkgs[@]}" "${libs[@]}")
    while ((${#level[@]})); do
        for p in "${level[@]}"; do seen[$p]=1; all+=("$p"); done
        next=()
        while read -r d; do
            [[ -n $d && -z ${seen[$d]:-} ]] || continue
            seen[$d]=1
            if [[ -n $(sid_candidate "$d") ]]; then next+=("$d")
            else log "note: skipping $d (not a real package in sid)"; fi
        done < <(sid_lib_deps "${level[@]}")
        level=("${next[@]}")
    done

    log "downloading ${#all[@]} $SUITE packages:$(for p in "${all[@]}"; do printf ' %s=%s' "$p" "$(sid_candidate "$p")"; done)"
    rm -f "$APT"/debs/*.deb
    (cd "$APT/debs" && apt-get "${APT_OPTS[@]}" download "${all[@]}" >&2) \
        || die "apt-get download from $SUITE failed"

    log "unpacking into $ROOT"
    rm -rf "$ROOT.tmp" && mkdir -p "$ROOT.tmp"
    for deb in "$APT"/debs/*.deb; do
        dpkg-deb -x "$deb" "$ROOT.tmp" || die "dpkg-deb -x $deb failed"
    done
    rm -rf "$ROOT" && mv "$ROOT.tmp" "$ROOT"
    (echo "$STAMP_VERSION $SUITE"; cd "$APT/debs" && printf '%s\n' ./*.deb) > "$ROOT/.unpacked"
    rm -rf "$VENV"   # a venv of an older unpack would point at stale files
fi

PY=$ROOT/usr/bin/python3.14
[[ -x $PY && -e $LIBDIR/$LDSO ]] || die "unpacked tree $ROOT is incomplete"

# ---- 3. make the unpacked interpreter runnable on its own --------------------
# Every NEEDED lib of the interpreter and of lib-dynload must be in the
# unpacked tree (else the host's older copy would be picked up silently).
missing=()
for elf in "$PY" "$ROOT"/usr/lib/python3.14/lib-dynload/*.so "$LIBDIR"/*.so*; do
    [[ -f $elf && ! -L $elf ]] || continue
    while read -r n; do
        [[ -z $n || -e $LIBDIR/$n || $n == "$LDSO" ]] || missing+=("$n (for ${elf##*/})")
    done < <(patchelf --print-needed "$elf" 2>/dev/null || true)
done
((${#missing[@]} == 0)) || die "libs not in the sid tree: $(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')"

log "patching ELF interpreter and RPATH of $PY"
patchelf --set-interpreter "$LIBDIR/$LDSO" --force-rpath --set-rpath "$LIBDIR" "$PY" \
    || die "patchelf failed on $PY"
"$PY" -c 'pass' || die "patched $PY does not run"

# Debian splits pyconfig.h into a multiarch wrapper that #includes
# <$MA/python3.14/pyconfig.h> from the *system* include path, where the host
# has no 3.14 headers: put the real file in place of the wrapper.
cp -f "$ROOT/usr/include/$MA/python3.14/pyconfig.h" "$ROOT/usr/include/python3.14/pyconfig.h" \
    || die "multiarch pyconfig.h missing"

# Debian's _sysconfigdata hard-codes /usr paths. sysconfig.get_paths() is
# already relocated by CPython, but INCLUDEPY/LIBDIR/... (used by
# python3.14-config-like tools, CMake, ensurepip's WHEEL_PKG_DIR) are not.
"$PY" - "$ROOT" <<'EOF' || die "patching _sysconfigdata failed"
import re, sys, sysconfig, pathlib
root = sys.argv[1]
keys = ("INCLUDEPY CONFINCLUDEPY INCLUDEDIR CONFINCLUDEDIR LIBDIR LIBPL LIBPC "
        "LIBDEST DESTLIB DESTSHARED BINLIBDEST MACHDESTLIB BINDIR SCRIPTDIR "
        "WHEEL_PKG_DIR").split()
mod = sysconfig._get_sysconfigdata_name()
path = pathlib.Path(sysconfig.get_paths()["stdlib"], mod + ".py").resolve()
orig = path.with_name(path.name + ".debian")   # pristine copy: re-patch from it
if not orig.exists():
    orig.write_text(path.read_text())
text = orig.read_text()
for k in keys:
    text = re.sub(r"('%s': ')(/usr[^']*)'" % k, lambda m: m.group(1) + root + m.group(2) + "'", text)
path.write_text(text)
for pyc in path.parent.glob("__pycache__/" + mod + ".*"):
    pyc.unlink()
EOF

# ---- 4. venv ----------------------------------------------------------------
if ! venv_healthy; then
    log "creating venv $VENV"
    rm -rf "$VENV"
    if ! "$PY" -m venv "$VENV" >&2; then
        # ensurepip unusable: make the venv bare and bootstrap pip ourselves.
        log "ensurepip failed; bootstrapping pip"
        rm -rf "$VENV"
        "$PY" -m venv --without-pip "$VENV" >&2 || die "python3.14 -m venv failed"
        whl=$(compgen -G "$ROOT/usr/share/python-wheels/pip-*.whl" | head -n1 || true)
        if [[ -z $whl ]]; then
            wd=$CACHE/pip-wheel && rm -rf "$wd" && mkdir -p "$wd"
            python3 -m pip download -q --no-deps --only-binary=:all: -d "$wd" pip >&2 \
                || die "no pip wheel: host python3 -m pip download pip failed"
            whl=$(compgen -G "$wd/pip-*.whl" | head -n1)
        fi
        # A wheel is a zip of pure Python: run pip from it to install itself.
        "$VPY" "$whl/pip" install -q --no-index "$whl" >&2 || die "installing pip into the venv failed"
    fi
fi
"$VPY" -m pip --version >&2 || die "pip does not run in $VENV"

log "pip install pybind11 setuptools wheel"
"$VPY" -m pip install -q --disable-pip-version-check pybind11 setuptools wheel >&2 \
    || die "pip install pybind11 setuptools wheel failed"

# ---- 5. verify --------------------------------------------------------------
log "checking stdlib extension modules, headers and that no host lib leaks in"
"$VPY" - "$ROOT" >&2 <<'EOF' || die "interpreter check failed"
import sys, os, sysconfig, subprocess
import ssl, ctypes, sqlite3, hashlib, zlib, json, threading, decimal, lzma, bz2, uuid
root = sys.argv[1]
inc = sysconfig.get_paths()["include"]
for h in ("Python.h", "pyconfig.h", "internal/pycore_frame.h", "internal/pycore_interpframe.h"):
    assert os.path.isfile(os.path.join(inc, h)), f"missing {inc}/{h}"
hashlib.sha256(b"x"); ctypes.CDLL(None); sqlite3.connect(":memory:")
ssl.create_default_context()
# Every shared object mapped must come from the sid tree (or the venv).
bad = sorted({l.split()[-1] for l in open("/proc/self/maps")
              if ".so" in l and not l.split()[-1].startswith(root)})
assert not bad, f"host libraries loaded: {bad}"
# sys.executable must work in a subprocess without any env tweaks.
out = subprocess.check_output([sys.executable, "-c", "import ssl,sys; print(sys.prefix)"],
                              env={"PATH": "/usr/bin:/bin"}, text=True).strip()
assert out == sys.prefix, (out, sys.prefix)
print(f"python {sys.version.split()[0]} ({ssl.OPENSSL_VERSION}, sqlite {sqlite3.sqlite_version}); include={inc}")
EOF

# A tiny C++17 extension built with setuptools against the 3.14 headers
# (incl. the internal frame headers the profiler needs), then imported.
log "building a tiny C++17 extension with setuptools"
tmp=$(mktemp -d /tmp/spprof-py314-check.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/probe.cpp" <<'EOF'
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define Py_BUILD_CORE 1
#include "internal/pycore_frame.h"
#include "internal/pycore_interpframe.h"  // 3.14: full _PyInterpreterFrame
#undef Py_BUILD_CORE
#include <string_view>
static PyObject *answer(PyObject *, PyObject *) {
    constexpr std::string_view s{"spprof"};
    return PyLong_FromSize_t(s.size() + (sizeof(_PyInterpreterFrame) > 0 ? 0 : 1));
}
static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, nullptr}, {nullptr, nullptr, 0, nullptr}};
static PyModuleDef mod = {PyModuleDef_HEAD_INIT, "spprof_probe", nullptr, -1, methods};
PyMODINIT_FUNC PyInit_spprof_probe() { return PyModule_Create(&mod); }
EOF
cat > "$tmp/setup.py" <<'EOF'
from setuptools import setup, Extension
setup(name="spprof_probe", ext_modules=[Extension(
    "spprof_probe", ["probe.cpp"], language="c++", extra_compile_args=["-std=c++17"])])
EOF
# Debian's sysconfig names the compiler x86_64-linux-gnu-gcc; fall back to
# plain gcc/g++ if the host lacks the triplet-prefixed names.
cc=$("$VPY" -c "import sysconfig; print(sysconfig.get_config_var('CC').split()[0])")
if ! command -v "$cc" >/dev/null; then
    log "$cc not found, using gcc/g++"
    export CC=gcc CXX=g++ LDSHARED="gcc -shared" LDCXXSHARED="g++ -shared"
fi
(cd "$tmp" && "$VPY" setup.py -q build_ext --inplace >build.log 2>&1) \
    || { cat "$tmp/build.log" >&2; die "building a C++17 extension against the 3.14 headers failed"; }
(cd "$tmp" && "$VPY" -c "import spprof_probe; assert spprof_probe.answer() == 6") \
    || die "importing the built extension failed"

venv_healthy || die "venv check failed after setup"
echo "$STAMP_VERSION $ROOT" > "$OK_STAMP"
log "ready in $((SECONDS - T0))s: $VPY"
echo "$VPY" >&3
