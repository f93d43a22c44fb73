#!/usr/bin/env bash
# The main job: sets up spprof, profiles the demo workload (examples/demo.py) and writes out/demo.speedscope.json.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh
exec .venv/bin/python examples/demo.py out/demo.speedscope.json
