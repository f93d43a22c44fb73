"""spprof uses no signal: applications that own SIGPROF, SIGSEGV or faulthandler keep them."""
import pytest

from conftest import run_workload


def test_application_keeps_its_sigprof_timer():
    _, plain = run_workload("sigprof_app", "plain")
    proc, profiled = run_workload("sigprof_app", "profiled")
    assert proc.returncode == 0, proc.stderr
    assert profiled["handler_kept"] and plain["handler_kept"]
    # ITIMER_PROF fires per 5 ms of process CPU; the sampler only adds CPU, so the rate per CPU
    # second holds (absolute counts vary with the run's CPU time, profiled or not)
    rate_plain = plain["signals"] / plain["cpu_s"]
    rate_profiled = profiled["signals"] / profiled["cpu_s"]
    assert rate_plain > 150
    assert rate_profiled >= 0.9 * rate_plain, (plain, profiled)
    assert profiled["work_samples"] > 100


@pytest.mark.parametrize("reader", ["vm_readv", "proc_mem", "pipe"])
def test_handlers_untouched_and_stderr_silent(reader):
    proc, result = run_workload("signal_handlers", env={"SPPROF_READER": reader})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert result["reader"] == {"vm_readv": "process_vm_readv", "proc_mem": "/proc/self/mem", "pipe": "pipe"}[reader]
    assert result["changed"] == [], result
    assert result["faulthandler"] is True
    assert result["samples"] > 50
