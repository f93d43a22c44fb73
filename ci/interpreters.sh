# Sourced by the ci scripts: `interpreter 3.X` prints the path of that Python 3.X, 3.9-3.13 from
# pyenv's versions folder and 3.14 from Debian's sid (ci/python314.sh); nothing when there is none.
interpreter() {
    if [ "$1" = 3.14 ]; then
        bash "$(dirname "${BASH_SOURCE[0]}")/python314.sh"
    else
        ls -d "$(pyenv root 2>/dev/null || echo /root/.pyenv)"/versions/"$1".*/bin/python3 2>/dev/null | sort -V | tail -n 1
    fi
}
