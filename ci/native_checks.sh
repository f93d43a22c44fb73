#!/usr/bin/env bash
# The native engine on its own, under sanitizers, for each frame model and line-table format:
#   tests/native/engine_tsan.cpp   the engine started and stopped in rounds under ThreadSanitizer,
#                                  with Python threads running and the counters read meanwhile
#   tests/native/fuzz_readers.cpp  seeded, bounded fuzzing of every reader of interpreter memory
#                                  (line tables, str, frame chains, thread list, symbols, asyncio
#                                  tasks running and suspended) under AddressSanitizer and
#                                  UndefinedBehaviorSanitizer; one file per target in
#                                  tests/native/fuzz_readers/
# Both embed the pyenv interpreter they were built for and link csrc/ (not the pybind11 module).
#
# Usage: bash ci/native_checks.sh [--seconds N | --long] [--seed S]   (arguments go to the fuzzer)
#   SPPROF_NATIVE_VERSIONS  interpreters to check (default "3.9 3.10 3.11 3.12 3.13": object frames
#                           with lnotab, then with the PEP 626 line table, cframe with the location
#                           table, the same with C-stack entry frames, current_frame with co_version;
#                           "3.14" adds Debian sid's 3.14 from ci/python314.sh, tagged code references)
# Builds are kept in ~/.cache/spprof/native-checks and redone only when a source changed.
# Prints "native checks: clean" at the end, or exits nonzero.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

log() { echo "[native] $*" >&2; }

# Compilers, the headers csrc/ uses (Boost, RapidJSON) and the sanitizer runtimes (gcc's).
missing=()
for pkg in g++ libboost-dev rapidjson-dev; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
    for lib in libtsan.so libasan.so libubsan.so; do
        [ -e "$(g++ -print-file-name=$lib)" ] || { missing+=(libtsan2 libasan8 libubsan1); break; }
    done
fi
if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
        || { log "cannot install ${missing[*]}"; exit 1; }
fi

versions=${SPPROF_NATIVE_VERSIONS:-"3.9 3.10 3.11 3.12 3.13"}
cache=${SPPROF_CACHE:-$HOME/.cache/spprof}/native-checks
mkdir -p "$cache"
warn="-Wall -Wextra -Wno-missing-field-initializers -Wno-unused-parameter"
tsan_flags="-O1 -g -fsanitize=thread -Wno-tsan"
asan_flags="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
failed=0

# The engine's sources are all of csrc/*.cpp but the pybind11 module; none includes Python.h, so
# their objects serve every interpreter: built once per sanitizer. layout.c (C, with the
# interpreter's internal headers, as setup.py builds it) and the programs are built per version.
# One compiler at a time: the machine has 2 cores and others use them. Nothing is rebuilt when
# its sources and flags are unchanged.
engine_sources=$(ls csrc/*.cpp | grep -v '/module\.cpp$')

build_engine() {  # KIND FLAGS
    local dir=$cache/engine-$1 flags=$2 digest
    digest="$(cat csrc/*.cpp csrc/*.h | sha256sum | cut -d' ' -f1) $flags $(g++ -dumpfullversion)"
    [ "$(cat "$dir/stamp" 2>/dev/null)" = "$digest" ] && return 0
    rm -rf "$dir" && mkdir -p "$dir"
    local pids=() pid status=0
    for src in $engine_sources; do  # one compiler a CPU
        g++ -std=c++17 $flags $warn -DBOOST_ASIO_NO_DEPRECATED -Icsrc -c "$src" -o "$dir/$(basename "$src" .cpp).o" &
        pids+=($!)
        if [ ${#pids[@]} -ge "$(nproc)" ]; then wait "${pids[0]}" || status=1; pids=("${pids[@]:1}"); fi
    done
    for pid in "${pids[@]}"; do wait "$pid" || status=1; done
    [ $status -eq 0 ] || return 1
    echo "$digest" > "$dir/stamp"
}

# A program is tests/native/MAIN.cpp, plus the files of tests/native/MAIN/ when it has that folder.
build_program() {  # KIND FLAGS PREFIX PYVER MAIN
    local kind=$1 flags=$2 prefix=$3 pyver=$4 main=$5
    local dir=$cache/$pyver-$kind inc=$prefix/include/python$pyver digest src
    local parts=(tests/native/"$main".cpp) headers=()
    [ -d tests/native/"$main" ] && { parts+=(tests/native/"$main"/*.cpp); headers=(tests/native/"$main"/*.h); }
    digest="$(cat csrc/layout.c csrc/*.h tests/native/*.h "${headers[@]}" "${parts[@]}" "$cache/engine-$kind/stamp" \
              | sha256sum | cut -d' ' -f1) $flags $prefix"
    [ -x "$dir/$main" ] && [ "$(cat "$dir/stamp" 2>/dev/null)" = "$digest" ] && return 0
    rm -rf "$dir" && mkdir -p "$dir"
    gcc -std=c11 $flags -DPy_BUILD_CORE -I"$inc" -Icsrc -c csrc/layout.c -o "$dir/layout.o" || return 1
    for src in "${parts[@]}"; do
        g++ -std=c++17 $flags $warn -DBOOST_ASIO_NO_DEPRECATED -DSPPROF_PYHOME="\"$prefix\"" -I"$inc" -Icsrc -Itests/native \
            -c "$src" -o "$dir/$(basename "$(dirname "$src")")-$(basename "$src" .cpp).o" || return 1
    done
    g++ $flags "$dir"/*.o "$cache/engine-$kind"/*.o -o "$dir/$main" -L"$libdir" -lpython"$pyver" \
        -Wl,-rpath,"$libdir" $link_extra -pthread -ldl -lm || return 1
    echo "$digest" > "$dir/stamp"
}

start=$(date +%s)
log "building the engine with ThreadSanitizer, and with ASan + UBSan"
build_engine tsan "$tsan_flags" || { log "TSan build of csrc/ failed"; exit 1; }
build_engine asan "$asan_flags" || { log "ASan build of csrc/ failed"; exit 1; }
for v in $versions; do
    if [ "$v" = 3.14 ]; then
        # sid's interpreter needs sid's glibc: the programs get sid's loader and find its libraries
        # first (RPATH, not RUNPATH, so libpython's own dependencies are found there too).
        bash ci/python314.sh >/dev/null || { log "Python 3.14: ci/python314.sh failed"; failed=1; continue; }
        prefix=${SPPROF_PY314_CACHE:-${SPPROF_CACHE:-$HOME/.cache/spprof}/python3.14}/root/usr
        libdir=$prefix/lib/x86_64-linux-gnu
        link_extra="-Wl,--dynamic-linker=$libdir/ld-linux-x86-64.so.2 -Wl,--disable-new-dtags -Wl,--allow-shlib-undefined"
    else
        prefix=$(ls -d /root/.pyenv/versions/"$v".* 2>/dev/null | sort -V | tail -n 1)
        libdir=$prefix/lib link_extra=""
    fi
    if [ -z "$prefix" ] || [ ! -e "$libdir/libpython$v.so" ]; then
        log "Python $v: no shared libpython $v"; failed=1; continue
    fi
    log "Python $v ($prefix): building the ThreadSanitizer engine check"
    if ! build_program tsan "$tsan_flags" "$prefix" "$v" engine_tsan; then
        log "Python $v: TSan build failed"; failed=1; continue
    fi
    log "Python $v: running the engine under ThreadSanitizer"
    # halt_on_error: the first report ends the run with exit code 66. No suppressions are needed:
    # libpython is not instrumented, so its own accesses are never reported.
    if ! TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1" \
        timeout 600 "$cache/$v-tsan/engine_tsan" --rounds 16; then
        log "Python $v: engine_tsan FAILED"; failed=1
    fi
    log "Python $v: building the fuzzer with ASan + UBSan"
    if ! build_program asan "$asan_flags" "$prefix" "$v" fuzz_readers; then
        log "Python $v: ASan build failed"; failed=1; continue
    fi
    log "Python $v: fuzzing the readers"
    # Leaks are not checked: the embedded interpreter keeps its memory until exit, by design.
    if ! ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0" \
        UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
        timeout 1800 "$cache/$v-asan/fuzz_readers" "$@"; then
        log "Python $v: fuzz_readers FAILED"; failed=1
    fi
done
log "done in $(( $(date +%s) - start )) s"
[ $failed -eq 0 ] || { echo "native checks: FAILED" >&2; exit 1; }
echo "native checks: clean"
