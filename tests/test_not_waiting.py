"""Threads that are not Waiting but take part in a hang (issue 15, point 5): a resource waiter
that broke in from ExpWaitForResource and runs, lock owners that are Running, Ready or
Standby — what they hold and which processor they wait for."""
import pytest

from pykd_ext.analysis.waitgraph import analyze
from pykd_ext.mock.builder import ScenarioBuilder

from conftest import WIN7, WIN10, WIN11, WIN81, cached
from test_waitgraph import ACQ_X, START, TOP

BREAK_TOP = ["nt!DbgBreakPointWithStatus+0x1", "nt!ExpWaitForResource+0x12b"]


def base(build, cpus=2):
    b = ScenarioBuilder(build)
    b.module("Drv", "Drv.sys")
    sysp = b.process("System", 4)
    for i in range(cpus):
        idle = b.thread(sysp, 0x100 + 4 * i, "nt!KiIdleLoop", state="Running", frames=["nt!KiIdleLoop+0x5a"])
        b.processor(i, current_thread=idle, idle_thread=idle)
    return b, sysp


@pytest.mark.parametrize("build", [WIN7, WIN81, WIN10, WIN11])
def test_a_resource_waiter_that_broke_in_is_still_a_waiter(build):
    b, sysp = base(build)
    r = b.eresource(name="Drv!gLock")
    owner = b.thread(sysp, 0x10, "Drv!Owner", frames=TOP + ["Drv!Owner+0x20"] + START)
    b.acquire_resource(r, owner)
    b.wait_on(owner, [b.event()], "Executive")
    w = b.thread(sysp, 0x14, "Drv!W", waited_ticks=30000,
                 frames=BREAK_TOP + ["nt!ExAcquireResourceExclusiveLite+0x1a6", "Drv!W+0x20"] + START)
    b.wait_resource(w, r)
    b.resource_timeout_break(w, 1)
    a = analyze(cached(b))
    assert a.threads[w].state == "Running"
    ev = "wait-chain" if build in (WIN10, WIN11) else "stack-scan"
    assert [(e.thread, e.lock, e.evidence) for e in a.edges] == [(w, r, ev)]
    assert [(c.root, [p[0].thread for p in c.paths]) for c in a.chains] == [(owner, [w])]


@pytest.mark.parametrize("build", [WIN7, WIN11])
def test_a_ready_owner_says_which_processor_it_waits_for(build):
    b, sysp = base(build)
    r = b.eresource(name="Drv!gLock")
    busy = b.thread(sysp, 0x30, "Drv!Spin", state="Running", frames=["Drv!Spin+0x10"] + START)
    b.set_current(1, busy)
    owner = b.thread(sysp, 0x10, "Drv!Owner", state="Ready", frames=["Drv!Owner+0x20"] + START)
    b.acquire_resource(r, owner)
    b.ready_thread(owner, 1, priority=8)
    w = b.thread(sysp, 0x14, "Drv!W", frames=TOP + ACQ_X + ["Drv!W+0x20"] + START)
    b.wait_resource(w, r)
    a = analyze(cached(b))
    (ch,) = a.chains
    assert ch.root == owner
    assert ch.reason.startswith("ready to run but not running: it waits for processor 1 (Ready), "
                                "which runs thread 0x%x" % busy)


@pytest.mark.parametrize("build", [WIN81, WIN10])
def test_a_standby_owner_and_a_running_owner(build):
    b, sysp = base(build)
    r1, r2 = b.eresource(), b.eresource()
    standby = b.thread(sysp, 0x10, "Drv!A", frames=["Drv!A+0x20"] + START)
    b.acquire_resource(r1, standby)
    b.standby_thread(standby, 0)
    running = b.thread(sysp, 0x18, "Drv!B", state="Running", frames=["Drv!B+0x20"] + START)
    b.acquire_resource(r2, running)
    b.set_current(1, running)
    for tid, r in ((0x20, r1), (0x24, r2)):
        w = b.thread(sysp, tid, "Drv!W", frames=TOP + ACQ_X + ["Drv!W+0x20"] + START)
        b.wait_resource(w, r)
    a = analyze(cached(b))
    reasons = {c.root: c.reason for c in a.chains}
    assert reasons[standby].startswith("chosen to run next but not yet running: it waits for processor 0 (Standby)")
    assert reasons[running].startswith("running on processor 1 (not waiting)")
