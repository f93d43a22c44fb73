#!/usr/bin/env bash
# Installs everything spprof needs to build and run: Debian's compilers and headers, then a
# virtual environment at .venv with spprof installed in it. Running it again is quick.
# --test-tools also installs what the tests check the outputs with: Go's pprof, headless Chromium,
# mypy, and the FlameGraph script that Debian ships in libdevel-nytprof-perl.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "[setup] $*" >&2; }

packages=(g++ libboost-dev rapidjson-dev patchelf)
[ "${1:-}" = --test-tools ] && packages+=(golang-go chromium python3-mypy libdevel-nytprof-perl)
missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The interpreter for .venv: SPPROF_PYTHON, else pyenv's 3.11, else the system's python3.
python=${SPPROF_PYTHON:-}
if [ -z "$python" ]; then
    for candidate in /root/.pyenv/versions/3.11.*/bin/python3 "$(command -v python3 || true)"; do
        [ -x "$candidate" ] && { python=$candidate; break; }
    done
fi
[ -n "$python" ] || { log "no python3 found"; exit 1; }
if [ ! -x .venv/bin/python ]; then
    log "creating .venv with $python"
    "$python" -m venv .venv || {
        log "$python has no venv module: installing Debian's python3-venv"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        "$python" -m venv .venv
    }
fi

# Rebuild only when a source changed since the last install.
stamp=.venv/.spprof-build
digest=$(cat setup.py pyproject.toml spprof-auto.pth csrc/* bench/native/* spprof/*.py | sha256sum | cut -d' ' -f1)
# (checked from / : in the checkout, its spprof/ without the built module would be found first)
if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ] || ! (cd / && "$OLDPWD/.venv/bin/python" -c "import spprof._native, spprof._bench") 2>/dev/null; then
    log "installing spprof into .venv"
    .venv/bin/python -m pip install -q --disable-pip-version-check -U pip
    # editable: the bench scripts import the checkout's spprof/ (the test venvs of ci/test.sh
    # install it as a user does, spprof-auto.pth included); SPPROF_BENCH=1 adds spprof._bench,
    # the engine driven piece by piece, which the micro-benchmarks use
    SPPROF_BENCH=1 .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test,bench]"
    echo "$digest" > "$stamp"
fi
log "ready: .venv/bin/python ($(.venv/bin/python -c 'import platform; print(platform.python_version())'))"
