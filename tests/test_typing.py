"""The public package is fully typed: mypy --strict (Debian's python3-mypy) passes on it and on
code written against the quickstart."""
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

USER_CODE = '''
import spprof

def work() -> int:
    return sum(range(1000))

spprof.start(interval_ms=10, output_path="/tmp/profile.json", mode="wall")
stats = spprof.stats()
if stats is not None:
    pct: float = stats.overhead_estimate_pct
profile: spprof.Profile = spprof.stop()
names = [f.function_name for s in profile.samples for f in s.frames]
profile.save("profile.collapsed", format="collapsed")
with spprof.Profiler(interval_ms=5) as p:
    work()
assert p.profile is not None

@spprof.profile(output_path="compute.json")
def heavy() -> int:
    return work()

@spprof.profile
def bare(x: int) -> int:
    return x

total: int = heavy() + bare(1)
'''


def mypy(*args, cwd):
    mypy_python = shutil.which("python3", path="/usr/bin")
    assert mypy_python, "Debian's python3 with python3-mypy is needed (ci/setup.sh --test-tools)"
    return subprocess.run([mypy_python, "-m", "mypy", "--strict", "--cache-dir", str(cwd / "cache"), *args],
                          capture_output=True, text=True, cwd=cwd, env={**os.environ, "MYPYPATH": str(ROOT)})


def test_package_passes_mypy_strict(tmp_path):
    proc = mypy(str(ROOT / "spprof"), cwd=tmp_path)
    assert "No module named mypy" not in proc.stderr, "install Debian's python3-mypy (ci/setup.sh --test-tools)"
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_quickstart_style_code_type_checks(tmp_path):
    (tmp_path / "user.py").write_text(USER_CODE)
    proc = mypy("user.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
