"""fork() while profiling: the child starts inactive and can profile itself; the parent goes on."""
import json

from conftest import run_workload


def test_child_of_a_profiled_parent_starts_inactive_and_profiles_itself(tmp_path):
    proc, out = run_workload("fork_child", tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    child = out["child"]
    assert out["child_status"] == 0
    assert child["active"] is False and child["stats"] is False
    assert child["stop"] == "Profiler not running"
    assert child["child_samples"] > 0 and "child_work" in child["child_functions"]
    # the child's normal exit did not write the parent's output_path
    assert out["parent_file_before_stop"] is False
    assert out["parent_samples_after_fork"] > 0 and out["parent_threads"] >= 2
    parent = json.loads((tmp_path / "parent.json").read_text())
    child_file = json.loads((tmp_path / "child.json").read_text())
    assert parent["profiles"] and child_file["profiles"]


def test_pre_fork_workers_each_profile_themselves(tmp_path):
    for parent_mode in ("idle", "profiled"):
        folder = tmp_path / parent_mode
        folder.mkdir()
        proc, out = run_workload("fork_workers", folder, parent_mode, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert out["codes"] == [0, 0, 0]
        assert out["parent_active"] is (parent_mode == "profiled")
        for pid in out["pids"]:
            doc = json.loads((folder / f"worker-{pid}.json").read_text())
            names = {f["name"] for f in doc["shared"]["frames"]}
            assert "worker_loop" in names
            assert sum(len(p["samples"]) for p in doc["profiles"]) > 0


def test_multiprocessing_fork_pool_under_a_profiled_parent():
    proc, out = run_workload("fork_multiprocessing", timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(out["results"]) == 4
    for samples, saw_job in out["results"]:
        assert samples > 0 and saw_job
