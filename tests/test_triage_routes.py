"""triage's routes for 0x101 CLOCK_WATCHDOG_TIMEOUT (parameter 3: the PRCB of the processor that
took no clock interrupt) and 0xA / 0xD1 (parameters: address, IRQL, access, faulting
instruction), and its timer-resolution section (issue 16, points 1 and 7)."""
import json

import pytest

from conftest import WIN10, cached, mock, run_cli
from pykd_ext.analysis.triage import triage
from pykd_ext.commands.triage import report
from pykd_ext.mock import scenarios
from pykd_ext.target.mock import MockTarget


def doc(name):
    code, out, err = run_cli("triage", "--target", mock(name), "--format", "json")
    assert code == 0 and err == ""
    return json.loads(out)


def built_doc(b):
    """triage's document of a built target, checked against the shipped triage schema."""
    from test_json_schema import validate
    t = cached(b)
    d = report(triage(t), t)
    assert validate(d) == []
    return d


# -- 0x101 ----------------------------------------------------------------------------------------

def test_0x101_names_the_processor_of_parameter_3_and_blames_its_driver():
    d = doc("bugcheck_101_hung_cpu")
    prcb = d["bugcheck"]["args"][2]
    running = json.loads(run_cli("running", "--target", mock("bugcheck_101_hung_cpu"), "--format", "json")[1])
    cpu = next(c for c in running["cpus"] if c["prcb"] == prcb)
    h = d["hung_processor"]
    assert h["cpu"] == cpu["cpu"] == 2 and h["prcb"] == prcb
    # it took no interrupt, so it saved no IRQL; its stack shows a DPC: DISPATCH_LEVEL or above
    assert h["irql"] is None and cpu["irql"] is None and h["spinning_in"] == "nt!KxWaitForSpinLockAndAcquire"
    assert h["function"] == "NicDrv!TxCompleteDpc" and h["frame"] == "NicDrv!TxReapRing+0x3a"
    t = MockTarget.load(mock("bugcheck_101_hung_cpu"))
    lock = h["spin_lock"]
    assert lock["lock"] == "0x%x" % t.symbol("NicDrv!gAdapterLock")
    # a plain spin lock records no owner: CPU 3 (NicDrv's reset worker, a thread at an IRQL nothing
    # recorded) is only a candidate
    assert lock["holder"] is None
    assert [(c["cpu"], c["evidence"]) for c in lock["holder_candidates"]] == [(3, "same-module-thread")]
    v = d["verdict"]
    assert v["module"] == "NicDrv.sys" and v["function"] == "NicDrv!TxReapRing"
    assert d["signature"] == "0x101_NicDrv.sys!TxReapRing"
    assert v["what"].startswith("CPU 2 took no clock interrupt for 0x18 ticks")
    assert "at DISPATCH_LEVEL or above (as every DPC)" in v["what"] and "at IRQL" not in v["what"]
    assert any("CPU 3" in e for e in v["evidence"])


def test_0x101_follows_parameter_3_not_parameter_4():
    # the same machine with parameter 3 naming CPU 3's PRCB (and parameter 4 left 0, as older
    # documentation has it): CPU 3, running the reset worker, is named and blamed
    b = scenarios.bugcheck_101_hung_cpu()
    b.bugcheck(0x101, 0x18, 0, b._prcb(3), 0)
    d = built_doc(b)
    assert d["hung_processor"]["cpu"] == 3 and d["hung_processor"]["spin_lock"] is None
    assert d["verdict"]["function"] == "NicDrv!WaitPhyReady" and d["signature"] == "0x101_NicDrv.sys!WaitPhyReady"


def test_0x101_ignores_what_the_hung_processor_last_saved():
    # a stale KPRCB.DebuggerSavedIRQL on the hung processors (the builder's raw put: what an
    # earlier break or bug check left) is not its IRQL now: it bug checked nothing
    b = scenarios.bugcheck_101_hung_cpu()
    b.put("_KPRCB", b._prcb(2), DebuggerSavedIRQL=0)
    b.put("_KPRCB", b._prcb(3), DebuggerSavedIRQL=2)
    d = built_doc(b)
    assert d["hung_processor"]["irql"] is None and "at IRQL" not in d["verdict"]["what"]
    b.bugcheck(0x101, 0x18, 0, b._prcb(3), 3)     # CPU 3 runs a thread: its IRQL is not known
    d = built_doc(b)
    assert d["hung_processor"]["cpu"] == 3 and d["hung_processor"]["irql"] is None
    assert "its IRQL not recorded" in d["verdict"]["what"] and "DISPATCH_LEVEL" not in d["verdict"]["what"]


def test_0x101_with_a_prcb_of_no_processor_says_so():
    b = scenarios.bugcheck_101_hung_cpu()
    b.bugcheck(0x101, 0x18, 0, 0xfffff80012345000, 0)
    d = built_doc(b)
    assert d["hung_processor"]["cpu"] is None and d["verdict"]["module"] is None
    assert "PRCB of no processor" in d["verdict"]["what"]


# -- 0xA / 0xD1 -----------------------------------------------------------------------------------

def test_0xd1_names_the_faulting_function_the_access_and_the_lock_it_holds():
    d = doc("bugcheck_d1_lock_holder")
    t = MockTarget.load(mock("bugcheck_d1_lock_holder"))
    f = d["fault"]
    assert f["module"] == "AcmeNet.sys" and f["function"] == "AcmeNet!ParsePacket"
    assert f["frame"] == "AcmeNet!ParsePacket+0x4a"
    assert f["ip"] == "0x%x" % (t.symbol("AcmeNet!ParsePacket") + 0x4a)
    assert f["access"] == "read" and f["irql"] == 2 and f["cpu"] == 1
    assert [h["lock"] for h in f["contended_locks"]] == ["0x%x" % t.symbol("AcmeNet!gRxQueueLock")]
    assert f["contended_locks"][0]["evidence"] == "recorded: queue-head" and "CPU 2" in f["contended_locks"][0]["waiters"]
    v = d["verdict"]
    assert v["module"] == "AcmeNet.sys" and d["signature"] == "0xD1_AcmeNet.sys!ParsePacket"
    assert "read of 0xffffb20c4a1f3010 at IRQL 2 (DISPATCH_LEVEL)" in v["what"]
    assert "holds a lock others wait for" in v["what"]


@pytest.mark.parametrize("code", [0xA, 0xD1])
def test_parameter_2_is_the_irql(code):
    # parameter 2 is the IRQL at the fault (MS docs, bug checks 0xA and 0xD1), whatever the
    # faulting processor's PRCB holds
    b = scenarios.bugcheck_d1_lock_holder()
    b.bugcheck(code, 0xffffb20c4a1f3010, 1, 0, b.code("AcmeNet!ParsePacket+0x4a"))
    b.put("_KPRCB", b._prcb(1), DebuggerSavedIRQL=2)
    d = built_doc(b)
    assert d["fault"]["irql"] == 1 and "at IRQL 1 (APC_LEVEL)" in d["verdict"]["what"]


@pytest.mark.parametrize("code", [0xA, 0xD1])
@pytest.mark.parametrize("arg3, access", [(0, "read"), (1, "write"), (8, "execute")])
def test_parameter_3_is_the_access(code, arg3, access):
    b = scenarios.bugcheck_d1_lock_holder()
    b.bugcheck(code, 0xffffb20c4a1f3010, 2, arg3, b.code("AcmeNet!ParsePacket+0x4a"))
    d = built_doc(b)
    assert d["fault"]["access"] == access and access in d["verdict"]["what"]


def test_a_fault_that_holds_nothing_says_nothing_of_locks():
    # CPU 2's spinner gone: the queued lock still held by the faulting DPC, but nobody waits
    b = scenarios.bugcheck_d1_lock_holder(WIN10)
    b.set_current(2, b.thread_started_at("nt!KiIdleLoop"))
    d = built_doc(b)
    assert d["fault"]["contended_locks"] == [] and "others wait for" not in d["verdict"]["what"]


# -- timer resolution ------------------------------------------------------------------------------

def _clock(current, requested):
    b = scenarios.ScenarioBuilder(WIN10)
    system = b.process("System", 4)
    scenarios._background(b, system)
    player = b.process("player.exe", 0x1a0)
    b.set_timer_resolution(player, requested)
    b.time_increment(current)
    return b


@pytest.mark.parametrize("current, requested, kind", [(5000, 10000, "finer"), (15625, 10000, "coarser")])
def test_a_clock_finer_or_coarser_than_every_request_is_said(current, requested, kind):
    d = built_doc(_clock(current, requested))
    assert d["timer_resolution"]["kind"] == kind and d["timer_resolution"]["current"] == current
    assert any(kind in e and "timer resolution" in e for e in d["verdict"]["evidence"])
    # a hang's verdict does not change for it
    assert d["verdict"]["what"].startswith("no deadlock cycle") and d["verdict"]["module"] is None


def test_a_clock_set_by_its_requester_is_not_a_section():
    assert doc("timerres_win10")["timer_resolution"] is None


# -- 0x162 and 0x13C: the thread of parameter 1 ----------------------------------------------------

def _boost(code):
    from test_waitgraph import START
    b = scenarios.ScenarioBuilder(WIN10)
    system = b.process("System", 4)
    scenarios._background(b, system)
    b.module("Drv", "Drv.sys")
    r = b.eresource(name="Drv!gTable")
    owner = b.thread(system, 0x40, "Drv!Owner", wait_reason="Executive",
                     frames=["nt!KiSwapContext+0x76", "nt!KeWaitForSingleObject+0x233", "Drv!Owner+0x30"] + START)
    b.acquire_resource(r, owner)
    b.wait_on(owner, [b.event()], "Executive")
    waiter = b.thread(system, 0x48, "Drv!Reader", waited_ticks=300,
                      frames=["nt!KiSwapContext+0x76", "nt!KeWaitForSingleObject+0x233", "nt!ExpWaitForResource+0x6d",
                              "nt!ExAcquireResourceSharedLite+0x2b1", "Drv!Reader+0x12"] + START)
    b.wait_resource(waiter, r, exclusive=False)                # contended: the lock analysis reports it
    if code == 0x162:
        frames = ["nt!KeBugCheckEx", "nt!KeAbPostRelease+0x1b5", "nt!ExReleaseResourceLite+0x4d",
                  "Drv!ReleaseForCaller+0x21", "Drv!Worker+0x6c"] + START
    else:
        frames = ["nt!KeBugCheckEx", "nt!PspExitThread+0x5a6", "nt!PsTerminateSystemThread+0x23",
                  "Drv!Worker+0x88"] + START
    t = b.thread(system, 0x44, "Drv!Worker", state="Running", frames=frames)
    b.processor(1, current_thread=t)
    if code == 0x162:
        b.bugcheck(0x162, t, r, 1, 0, cpu=1, irql=0)
    else:
        b.bugcheck(0x13C, t, 0x2, 0, 0, cpu=1, irql=0)
    return b, t, r, owner


def test_0x162_blames_the_releasing_thread_and_names_who_holds_the_lock():
    b, t, r, owner = _boost(0x162)
    d = built_doc(b)
    v = d["verdict"]
    assert "thread 0x%x (parameter 1, session 1) released the AutoBoost-tracked lock 0x%x (Drv!gTable)" % (t, r) \
        in v["what"]
    assert (v["module"], v["function"]) == ("Drv.sys", "Drv!ReleaseForCaller")
    assert any(("held by thread 0x%x" % owner) in e for e in v["evidence"])
    assert d["signature"] == "0x162_Drv.sys!ReleaseForCaller"


def test_0x13c_names_the_exiting_thread_and_its_driver():
    b, t, r, owner = _boost(0x13C)
    v = built_doc(b)["verdict"]
    assert v["what"].startswith("thread 0x%x (parameter 1) exited with I/O boost state or throttle count 0x2" % t)
    assert (v["module"], v["function"]) == ("Drv.sys", "Drv!Worker")
