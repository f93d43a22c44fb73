#!/usr/bin/env bash
# Creates the venv that bench/compare.py runs in: Python 3.11, spprof from this checkout,
# and the profilers it is compared with, from PyPI. Each peer is installed on its own, so
# one that does not install leaves the others usable (compare.py marks it "not installed").
#
#   bash bench/compare_setup.sh            # venv at ~/.cache/spprof/compare-venv
#   SPPROF_COMPARE_VENV=/path bash bench/compare_setup.sh
#   bash bench/compare_setup.sh --spprof-only   # reinstall spprof alone (after csrc/ changed)
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
venv="${SPPROF_COMPARE_VENV:-$HOME/.cache/spprof/compare-venv}"
py="${SPPROF_COMPARE_PYTHON:-$(ls -d /root/.pyenv/versions/3.11.*/bin/python3 2>/dev/null | sort -V | tail -n1)}"
if [ -z "$py" ] || [ ! -x "$py" ]; then
  py="$(command -v python3.11 || true)"
fi
if [ -z "$py" ]; then
  echo "no Python 3.11 found; set SPPROF_COMPARE_PYTHON" >&2
  exit 1
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "creating $venv with $py"
  mkdir -p "$(dirname "$venv")"
  "$py" -m venv "$venv" || exit 1
  "$venv/bin/python" -m pip install -q --upgrade pip || exit 1
fi
pip=("$venv/bin/python" -m pip install -q)

if [ "${1:-}" != "--spprof-only" ]; then
  # austin-python brings mojo2austin, which turns echion's binary MOJO output into text
  # pytest: bench/continuous.py's receiver reads pprof with the tests' protobuf reader
  for peer in py-spy pyinstrument echion austin-dist austin-python scalene yappi pyroscope-io ddtrace pytest; do
    if "${pip[@]}" "$peer"; then
      echo "installed $peer"
    else
      echo "WARNING: $peer did not install on $("$venv/bin/python" -V); compare.py reports it as not installed" >&2
    fi
  done
  # austin-dist 4.x ships a binary built against glibc 2.38; Debian 12 has 2.36. Fall back to
  # the newest 3.x when the installed binary does not start.
  if [ -x "$venv/bin/austin" ] && ! "$venv/bin/austin" --help >/dev/null 2>&1; then
    echo "austin-dist's binary does not run here ($("$venv/bin/austin" --help 2>&1 | head -n1)); trying austin-dist<4"
    "${pip[@]}" 'austin-dist<4' || echo "WARNING: austin-dist<4 did not install either" >&2
  fi
fi

# spprof from the checkout (builds the C++ extension, ~1 min). Not editable: the bench runs the
# installed module, never the checkout's spprof/ folder. SPPROF_BENCH=1 adds spprof._bench, so
# that the scripts driving the engine piece by piece (overhead.py, sample_cost.py) run here too.
SPPROF_BENCH=1 "${pip[@]}" --force-reinstall --no-deps "$repo" || exit 1
echo "installed spprof from $repo"
"$venv/bin/python" -m pip list 2>/dev/null | grep -iE '^(spprof|py-spy|pyinstrument|echion|austin-dist|austin-python|scalene|yappi) ' || true
echo "venv: $venv"
