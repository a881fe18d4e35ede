"""running (issue 16, point 3): what every processor runs, on shipped targets whose processors
the scenarios state."""
import json

import pytest

from conftest import WIN7, WIN11, cached, mock, run_cli
from pykd_ext.commands.running import running_doc
from pykd_ext.mock import scenarios
from test_not_waiting import base


def cpus(name):
    code, out, err = run_cli("running", "--target", mock(name), "--format", "json")
    assert code == 0 and err == ""
    return {c["cpu"]: c for c in json.loads(out)["cpus"]}


def test_the_0x133_processor_runs_a_dpc_in_its_idle_loop_spinning():
    c = cpus("dpc_133_athwbx")
    assert sorted(c) == [0, 1, 2, 3]
    three = c[3]
    assert (three["activity"], three["idle"], three["function"], three["module"]) == (
        "dpc", True, "ndis!ndisInterruptDpc", "athwbx.sys")          # a DPC, in the idle loop
    assert three["spinning_in"] == "nt!KeAcquireSpinLockRaiseToDpc" and three["bugchecked_here"]
    assert [c[i]["activity"] for i in (0, 2)] == ["idle", "idle"]
    assert (c[1]["activity"], c[1]["process"], c[1]["module"]) == ("thread", "System", "athwbx.sys")


def test_both_abba_processors_spin_and_no_irql_is_claimed():
    # broken in with the debugger, no bug check: which processor broke in (and saved its IRQL)
    # cannot be learned, so no processor's KPRCB.DebuggerSavedIRQL is believed
    c = cpus("spinlock_queued_abba")
    for i in (1, 2):
        assert c[i]["spinning_in"] == "nt!KxWaitForLockOwnerShip" and c[i]["irql"] is None
        assert c[i]["module"] == "NetFlt.sys"
    code, out, err = run_cli("running", "--target", mock("spinlock_queued_abba"), "--no-color")
    assert "thread, spinning in nt!KxWaitForLockOwnerShip" in out
    assert "CPU 1: nt!KeYieldProcessorEx+0x17 < nt!KxWaitForLockOwnerShip+0x2a" in out


@pytest.mark.parametrize("build", [WIN7, WIN11])
def test_the_standby_thread_is_read_from_its_processor_block(build):
    b, sysp = base(build)
    t = b.thread(sysp, 0x10, "Drv!A", frames=["Drv!A+0x20", "nt!PspSystemThreadStartup+0x55"])
    b.standby_thread(t, 1)
    c = {x["cpu"]: x for x in running_doc(cached(b))["cpus"]}
    assert c[1]["next_thread"] == "0x%x" % t
    assert [c[i]["next_thread"] for i in c if i != 1] == [None] * (len(c) - 1)


def _stale_irql(b, cpu, irql):
    """A stale KPRCB.DebuggerSavedIRQL on a processor that did not bug check: what an earlier
    break or bug check left (the builder's raw put; no kernel routine writes it now)."""
    b.put("_KPRCB", b._prcb(cpu), DebuggerSavedIRQL=irql)


def test_only_the_bug_checking_processor_shows_the_irql_it_saved():
    # CPU 0 bug checked from its clock interrupt (CLOCK_LEVEL saved); CPUs 1-3 hold stale values
    b = scenarios.bugcheck_101_hung_cpu()
    for cpu in (1, 2, 3):
        _stale_irql(b, cpu, 2)
    c = {x["cpu"]: x for x in running_doc(cached(b))["cpus"]}
    assert c[0]["bugchecked_here"] and c[0]["irql"] == 13
    assert [c[i]["irql"] for i in (1, 2, 3)] == [None, None, None]


def test_a_stale_irql_is_not_shown_and_the_text_says_what_the_stack_shows(tmp_path):
    b = scenarios.bugcheck_101_hung_cpu()
    _stale_irql(b, 1, 2)            # CPU 1 runs explorer's thread; nothing it saved is current
    _stale_irql(b, 2, 0)            # CPU 2 runs NicDrv's DPC
    path = str(tmp_path / "t.json.gz")
    b.save(path)
    code, out, err = run_cli("running", "--target", path, "--format", "json")
    assert code == 0
    c = {x["cpu"]: x for x in json.loads(out)["cpus"]}
    assert c[1]["irql"] is None and c[2]["irql"] is None
    code, text, err = run_cli("running", "--target", path, "--no-color")
    rows = {line.split()[0]: line for line in text.splitlines() if line.strip()[:1].isdigit()}
    assert "13 CLOCK_LEVEL" in rows["0"]
    assert ">= DISPATCH_LEVEL (runs a DPC)" in rows["2"]
    assert "DISPATCH" not in rows["1"] and " 2 " not in rows["1"].split("explorer.exe")[1]
    assert "saved only by the processor that bug checked" in text
