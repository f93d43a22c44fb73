#!/usr/bin/env bash
# Builds spprof and runs the test suite under every supported interpreter: 3.9-3.13 from
# /root/.pyenv/versions, 3.14 from Debian's sid (ci/python314.sh). SPPROF_VERSIONS picks a
# subset, e.g. SPPROF_VERSIONS="3.11 3.14". Extra arguments go to pytest. Then, once: the
# restricted-environment run, a 60 s soak, the suite under ASan and UBSan, and the native checks
# (the engine under TSan, every reader of interpreter memory fuzzed).
# A suite uses under one CPU (its workloads wait as much as they spin), so SPPROF_JOBS suites
# (default: the number of CPUs) run at once; each one's output is printed whole when it ends.
set -uo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh --test-tools || exit 1

versions=${SPPROF_VERSIONS:-"3.9 3.10 3.11 3.12 3.13 3.14"}
cache=${SPPROF_CACHE:-$HOME/.cache/spprof}
passed=0 failed=0 results=()

source ci/interpreters.sh
source ci/test_tools.sh
source ci/dist_wheel.sh

jobs=${SPPROF_JOBS:-$(nproc)}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
pytest_args=("$@")
declare -A outcome=()

build() {  # V: a venv of Python V with spprof installed from dist/'s wheel, as a user installs it
    local v=$1 py venv=$cache/venv-$1 whl
    py=$(interpreter "$v") || py=""
    if [ -z "$py" ] || [ ! -x "$py" ]; then
        echo "[test] Python $v: no interpreter found" >&2; outcome[$v]="no interpreter"; return 1
    fi
    [ -x "$venv/bin/python" ] || "$py" -m venv "$venv" || { outcome[$v]="venv failed"; return 1; }
    echo "[test] Python $v: building spprof with $py" >&2
    # The agent the continuous-profiling receiver is checked against, a pre-fork server,
    # greenlets for the frame walk and uvloop for asyncio tasks; where a version has no build of
    # one, its tests are skipped.
    test_tools "$venv" "[test] Python $v: " pyroscope-io gunicorn greenlet uvloop
    whl=$(dist_wheel "$v")
    [ -n "$whl" ] || { outcome[$v]="wheel build failed"; return 1; }
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$whl" >/dev/null ||
        { outcome[$v]="install failed"; return 1; }
}

# The tests that measure shares against a thread's own clocks run alone, after the rest: beside
# another suite their workload waits for a CPU, and that moves what they measure. Test paths
# given as arguments run as given, all beside each other.
alone=(tests/test_coroutines.py tests/test_accuracy.py)
split=1
for a in "${pytest_args[@]}"; do [ -e "${a%%::*}" ] && split=0; done

# pytest's script, not `python -m pytest`: the checkout's spprof/ (no built module) must not
# shadow the installed one. Each suite has its own temporary folder.
pytest_in() {  # V LOG ARGS...
    local v=$1 log=$2; shift 2
    "$cache/venv-$v/bin/pytest" -p no:cacheprovider --basetemp="$logs/tmp-$v" "$@" "${pytest_args[@]}" >"$logs/$log.log" 2>&1
}
suite() {  # V
    local ignore=()
    [ $split = 1 ] && ignore=("${alone[@]/#/--ignore=}")
    pytest_in "$1" "$1" "${ignore[@]}"
}

# A few tests that failed beside another suite run again alone, after the parallel phase: two
# suites on two CPUs can starve a workload far beyond what any test allows for. They count as
# failed if they fail alone too; the summary names each one.
declare -A rerun=()
max_reruns=5
report() {  # KEY [alone|rerun]: its log, and its summary line counted
    local key=$1 out p f ids=()
    case "${2:-}" in
        alone) echo "[test] Python ${key%-alone}: the tests run alone" >&2 ;;
        rerun) echo "[test] Python ${key%-rerun}: the tests that failed beside another suite, run alone" >&2 ;;
        *) echo "[test] Python $key: the tests" >&2 ;;
    esac
    cat "$logs/$key.log"
    out=$(tail -n 1 "$logs/$key.log")
    p=$(grep -oE '[0-9]+ passed' <<<"$out" | grep -oE '[0-9]+' || echo 0)
    f=$(grep -oE '[0-9]+ (failed|errors?)' <<<"$out" | awk '{s += $1} END {print s + 0}')
    if [ -z "${2:-}" ] && [ $split = 1 ]; then
        # "FAILED <node id> - <message>": a node id may hold spaces (parametrized ids)
        mapfile -t ids < <(sed -n 's/^FAILED //p' "$logs/$key.log" | sed 's/ - .*$//')
        if [ ${#ids[@]} -gt 0 ] && [ ${#ids[@]} -le $max_reruns ] && [ ${#ids[@]} -eq "$f" ]; then
            rerun[$key]=$(printf '%s\n' "${ids[@]}")
            f=0
        fi
    fi
    passed=$((passed + p)); failed=$((failed + f))
    # no test passed: a suite that ran nothing, or a rerun that collected nothing
    [ "$p" -gt 0 ] || [ "${2:-}" = alone ] || { [ "${2:-}" = rerun ] && [ "$f" -gt 0 ]; } || failed=$((failed + 1))
    outcome[$key]=$out
}

# The wheels first, one at a time (each compiles on every CPU): the suites test the wheels that
# ship, and ci/wheels.sh checks them last without building them again. Then the suites $jobs at
# a time.
echo "[test] building the wheels (ci/wheels.sh build)" >&2
SPPROF_VERSIONS="$versions" bash ci/wheels.sh build || echo "[test] some wheels failed to build" >&2
built=()
for v in $versions; do
    if build "$v"; then built+=("$v"); else failed=$((failed + 1)); fi
done
declare -A running=()
for v in "${built[@]}"; do
    while [ ${#running[@]} -ge "$jobs" ]; do
        wait -n -p done_pid; report "${running[$done_pid]}"; unset "running[$done_pid]"
    done
    echo "[test] Python $v: running the tests" >&2
    suite "$v" & running[$!]=$v
done
while [ ${#running[@]} -gt 0 ]; do
    wait -n -p done_pid; report "${running[$done_pid]}"; unset "running[$done_pid]"
done
if [ $split = 1 ]; then
    for v in "${built[@]}"; do
        pytest_in "$v" "$v-alone" "${alone[@]}"
        report "$v-alone" alone
        if [ -n "${rerun[$v]:-}" ]; then
            mapfile -t again <<<"${rerun[$v]}"
            pytest_in "$v" "$v-rerun" "${again[@]}"
            report "$v-rerun" rerun
            outcome[$v-rerun]="${rerun[$v]//$'\n'/, } -> ${outcome[$v-rerun]}"
        fi
    done
fi
for v in $versions; do
    results+=("$v: ${outcome[$v]}${outcome[$v-alone]:+; run alone: ${outcome[$v-alone]}}${outcome[$v-rerun]:+; failed beside another suite, then alone: ${outcome[$v-rerun]}}")
done

# Once, with .venv's interpreter: the demo in a pod-like sandbox, and the soak's short form.
# SPPROF_EXTRAS=0 leaves them out (for a quick run on a subset of versions).
extra() {
    local name=$1; shift
    echo "[test] $name" >&2
    if "$@" >&2; then passed=$((passed + 1)); results+=("$name: passed")
    else failed=$((failed + 1)); results+=("$name: FAILED"); fi
}
if [ "${SPPROF_EXTRAS:-1}" != 0 ]; then
    extra "restricted environment (ci/restricted.sh)" bash ci/restricted.sh
    extra "wheels for every version, installed with no headers and profiling the demo (ci/wheels.sh check)" \
        env SPPROF_VERSIONS="$versions" bash ci/wheels.sh check
    extra "micro-benchmarks, each run once (bench/test_micro.py)" \
        .venv/bin/pytest -p no:cacheprovider -q bench/test_micro.py --benchmark-disable
    extra "soak, 60 s (bench/soak.py)" .venv/bin/python bench/soak.py --seconds 60 --memory-limit-mb 2
    # alone: beside another job, the ASan suite's slower workloads miss their bounds
    extra "ASan + UBSan build, whole suite (ci/sanitizers.sh)" bash ci/sanitizers.sh
    extra "engine under TSan, readers fuzzed under ASan + UBSan (ci/native_checks.sh)" bash ci/native_checks.sh
fi

echo
echo "Per interpreter:"
printf '  %s\n' "${results[@]}"
echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
