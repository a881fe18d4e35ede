"""running (issue 16, point 3): what every processor runs, on shipped targets whose processors
the scenarios state."""
import json

import pytest

from conftest import WIN7, WIN11, cached, mock, run_cli
from pykd_ext.commands.running import running_doc
from test_not_waiting import base


def cpus(name):
    code, out, err = run_cli("running", "--target", mock(name), "--format", "json")
    assert code == 0 and err == ""
    return {c["cpu"]: c for c in json.loads(out)["cpus"]}


def test_the_0x133_processor_runs_a_dpc_in_its_idle_loop_spinning():
    c = cpus("dpc_133_athwbx")
    assert sorted(c) == [0, 1, 2, 3]
    three = c[3]
    assert (three["activity"], three["function"], three["module"]) == (
        "DPC (in the idle loop)", "ndis!ndisInterruptDpc", "athwbx.sys")
    assert three["spinning_in"] == "nt!KeAcquireSpinLockRaiseToDpc" and three["bugchecked_here"]
    assert [c[i]["activity"] for i in (0, 2)] == ["idle", "idle"]
    assert (c[1]["activity"], c[1]["process"], c[1]["module"]) == ("thread", "System", "athwbx.sys")


def test_both_abba_processors_spin_at_dispatch_level():
    c = cpus("spinlock_queued_abba")
    for i in (1, 2):
        assert c[i]["spinning_in"] == "nt!KxWaitForLockOwnerShip" and c[i]["irql"] == 2
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
