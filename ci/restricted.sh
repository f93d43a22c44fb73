#!/usr/bin/env bash
# Runs the demo as the quickstart's Kubernetes pod would run it: as user nobody, with no
# capabilities and no_new_privs, the root filesystem read-only and only a tmpfs volume writable.
# Then again with process_vm_readv refused by seccomp, where spprof must fall back to another
# reader and still sample. Building the sandbox (a mount namespace) needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
bash ci/setup.sh >&2
if ! /usr/bin/python3 -c "import seccomp" 2>/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-seccomp >/dev/null
fi
[ "$(id -u)" -eq 0 ] || { echo "restricted.sh builds its sandbox with mounts: run it as root" >&2; exit 1; }

stage=$(mktemp -d /run/spprof-sandbox.XXXXXX)  # where the real /root is kept in reach
volume=$(mktemp -d /tmp/spprof-volume.XXXXXX)
trap 'rmdir "$volume" "$stage" 2>/dev/null || true' EXIT

sandbox() {  # the command runs as nobody inside the sandbox; the volume is $VOLUME there
    unshare --mount --propagation private env REPO="$repo" STAGE="$stage" VOLUME="$volume" bash -euo pipefail -c '
        # /root is private (0700): nobody reaches the interpreters through a 0755 tmpfs over it
        mount --bind /root "$STAGE"
        mount -t tmpfs -o mode=755 tmpfs /root
        for d in .pyenv .cache/spprof; do
            [ -d "$STAGE/$d" ] || continue
            mkdir -p "/root/$d" && mount --bind "$STAGE/$d" "/root/$d" && mount -o remount,bind,ro "/root/$d"
        done
        mount -o remount,ro /root
        mount -t tmpfs -o mode=1777,size=64m tmpfs "$VOLUME"
        mount -o remount,bind,ro /
        cd "$VOLUME"
        exec setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all \
            --no-new-privs env -i PATH=/usr/bin:/bin HOME="$VOLUME" TMPDIR="$VOLUME" PYTHONDONTWRITEBYTECODE=1 \
            REPO="$REPO" VOLUME="$VOLUME" "$@"
    ' sandbox "$@"
}

# Inside: not root, no capabilities, / read-only; then the demo, and its file checked.
inside='
python=$1; shift
"$python" -c "
import os
assert os.getuid() != 0 and os.geteuid() != 0, \"still root\"
try:
    open(\"/spprof-probe\", \"w\")
    raise SystemExit(\"the root filesystem is writable\")
except OSError:
    pass
caps = open(\"/proc/self/status\").read().split(\"CapEff:\")[1].split()[0]
assert int(caps, 16) == 0, caps
print(\"sandbox: uid\", os.getuid(), \"no capabilities, / read-only\")
"
"$@" "$python" "$REPO/examples/demo.py" "$VOLUME/demo.speedscope.json"
"$python" -c "
import json, sys
doc = json.load(open(sys.argv[1]))
n = sum(len(p[\"samples\"]) for p in doc[\"profiles\"])
assert n > 0 and any(f[\"name\"] == \"slow_score\" for f in doc[\"shared\"][\"frames\"]), n
print(\"profile written on the volume:\", n, \"samples\")
" "$VOLUME/demo.speedscope.json"
'

status=0
for variant in plain no_vm_readv; do
    prefix=()
    expect="process_vm_readv"
    if [ $variant = no_vm_readv ]; then prefix=(/usr/bin/python3 "$repo/ci/no_vm_readv.py"); expect="/proc/self/mem"; fi
    echo "== restricted: $variant"
    if out=$(sandbox bash -euo pipefail -c "$inside" inside "$repo/.venv/bin/python" "${prefix[@]}" 2>&1); then
        echo "$out"
        grep -q "read with $expect" <<<"$out" || { echo "restricted ($variant): expected the $expect reader" >&2; status=1; }
    else
        echo "$out"; echo "restricted ($variant): failed" >&2; status=1
    fi
done
[ $status -eq 0 ] && echo "restricted: ok"
exit $status
