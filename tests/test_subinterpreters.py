"""spprof in a sub-interpreter: a clear ImportError, never a silent profile of the main
interpreter (nor the deadlock the native module's set-up meets there)."""
import sys

import pytest

from conftest import run_workload


@pytest.mark.parametrize("order", ["sub_first", "main_first"])
def test_sub_interpreter_import_is_refused_with_a_clear_error(order):
    if sys.version_info >= (3, 13):
        import _interpreters  # noqa: F401
    else:
        pytest.importorskip("_xxsubinterpreters")
    proc, out = run_workload("subinterpreter", order, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "main interpreter only" in out["import_error"]
    assert out["main_active"] is False
