# Sourced by the ci scripts: `dist_wheel 3.X` prints the path of dist/'s repaired wheel of spprof
# for that Python (built by ci/wheels.sh); nothing when there is none.
dist_wheel() {
    local tag=cp${1/./}
    ls -1 dist/spprof-*-"$tag"-"$tag"-manylinux*.whl 2>/dev/null | sort -V | tail -n 1
}
