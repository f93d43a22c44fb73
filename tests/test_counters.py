"""The counters saved with a profile describe all of it: taken after the sampler ended and after
the collector's last drain."""
from conftest import run_workload


def test_saved_counters_add_up_after_the_last_drain():
    proc, out = run_workload("counters_at_stop", timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for run in out["runs"]:
        assert run["collected"] == run["kept"] + run["dropped_memory"], run
        assert run["dropped_count"] == run["dropped"] == run["dropped_full"] + run["dropped_memory"], run
    assert any(run["dropped_memory"] > 0 for run in out["runs"]), "the bound was never reached"
