#!/usr/bin/env bash
# Builds spprof with AddressSanitizer and UndefinedBehaviorSanitizer into its own venv and runs
# the whole test suite under them (SPPROF_SAN_PYTHON picks the interpreter, 3.11 by default).
# Extra arguments go to pytest. Prints "sanitizers: clean" when nothing was reported.
set -uo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh --test-tools >&2 || exit 1
source ci/interpreters.sh
source ci/test_tools.sh
py=${SPPROF_SAN_PYTHON:-$(interpreter 3.11)}
venv=${SPPROF_CACHE:-$HOME/.cache/spprof}/venv-sanitizers
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv" || exit 1
# greenlets and uvloop drive the frame and task walks through paths of their own
test_tools "$venv" "[sanitizers] " greenlet uvloop
flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g"
log=$(mktemp -d)
# Its own build folder: in the checkout's build/, setuptools would find the objects of an
# ordinary build of the same interpreter up to date and link them, without the sanitizers.
printf '[build]\nbuild_base = %s\n' "$log/build" > "$log/build.cfg"
DIST_EXTRA_CONFIG="$log/build.cfg" CFLAGS="$flags" LDFLAGS="$flags" "$venv/bin/python" -m pip install -q \
    --disable-pip-version-check --no-build-isolation --force-reinstall --no-deps . >/dev/null ||
    { echo "sanitizer build failed" >&2; exit 1; }
rm -rf "$log/build" "$log/build.cfg"
module=$(ls "$venv"/lib/python3*/site-packages/spprof/_native*.so)  # not imported: ASan must load first
symbols=$(nm -D "$module")
grep -q __asan_init <<<"$symbols" && grep -q __ubsan_handle <<<"$symbols" ||
    { echo "sanitizer build failed: $module is not instrumented" >&2; exit 1; }
# Python itself is not instrumented: the runtime is preloaded, leaks (the interpreter's own,
# at exit) are not checked, and any report ends the process with a log in $log.
# libstdc++ too: ASan finds the real __cxa_throw only in libraries loaded before it starts
export LD_PRELOAD="$(g++ -print-file-name=libasan.so) $(g++ -print-file-name=libstdc++.so)"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:log_path=$log/asan"
export SPPROF_SANITIZED=1  # tests leave out their RSS checks
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$log/ubsan"
# Deselected: the pipe reader copies memory with write(), whose ASan interceptor checks the
# source (other objects' redzones) as if the program read it; process_vm_readv and
# /proc/self/mem, which the kernel does for us, run in every other test. Chromium does not run
# with ASan's runtime preloaded.
"$venv/bin/pytest" -p no:cacheprovider -q -k "not pipe and not html and not view" "$@"
status=$?
unset LD_PRELOAD
if ls "$log"/* >/dev/null 2>&1; then
    echo "sanitizer reports:" >&2
    cat "$log"/* >&2
    status=1
fi
rm -rf "$log"
[ $status -eq 0 ] && echo "sanitizers: clean"
exit $status
