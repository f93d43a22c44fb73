# Sourced by the ci scripts: `test_tools VENV PREFIX PEER...` installs into VENV what the tests and
# a build from the checkout need, then each optional PEER (a package some tests use and skip
# without); a peer with no build for that interpreter is named in the log after PREFIX.
test_tools() {
    local venv=$1 prefix=$2 peer
    shift 2
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -U pip setuptools wheel pybind11 pytest jsonschema 2>&1 |
        grep -v "^WARNING: Location" >&2
    for peer in "$@"; do
        { "$venv/bin/python" -m pip install -q --disable-pip-version-check "$peer" ||
            echo "$prefix$peer did not install"; } 2>&1 | grep -v "^WARNING: Location" >&2
    done
    return 0
}
