"""dpcs and timerres end to end: the seed's 0x133 culprit and queue, the cumulative case,
the timer-resolution tables (never the list head), the field names that differ between
builds, and both commands over every corrupted target."""
import json
import os

import pytest

from pykd_ext.analysis.dpc import analyze_dpcs
from pykd_ext.kernel.diag import Diagnostics
from pykd_ext.kernel.dpc import cpus
from pykd_ext.kernel.timers import requests
from pykd_ext.mock.builder import ScenarioBuilder
from pykd_ext.mock.scenarios import dpc_133_athwbx

from conftest import BUILDS, MOCKS, ROOT, cached, mock, run_cli


def run(cmd, name, fmt="json"):
    code, out, err = run_cli(cmd, "--target", mock(name), "--format", fmt)
    assert err == ""
    complete = json.loads(run_cli(cmd, "--target", mock(name), "--format", "json")[1])["complete"]
    assert code == (0 if complete else 3)             # 3: partial results
    return json.loads(out) if fmt == "json" else out


# -- dpcs ------------------------------------------------------------------------------------------

def test_seed_133_culprit_is_athwbx_spinning_on_a_spin_lock():
    d = run("dpcs", "dpc_133_athwbx")
    assert d["bugcheck"]["args"] == ["0x0", "0x501", "0x500", "0x0"]
    c = d["culprit"]
    assert (c["module"], c["function"], c["cpu"], c["spinning"]) == ("athwbx.sys", "ndis!ndisInterruptDpc", 3, True)
    assert "spinning on a spin lock" in c["reason"] and "0x501 ticks against 0x500" in c["reason"]
    assert c["could_hold_the_lock"] == [1]           # CPU 1 runs an athwbx thread; 0 and 2 are idle
    text = run("dpcs", "dpc_133_athwbx", "text")
    assert "CULPRIT: athwbx.sys" in text and "spinning on a spin lock" in text


def test_seed_133_queue_is_what_dpcs_printed():
    d = run("dpcs", "dpc_133_athwbx")
    cpu3 = d["cpus"][3]
    assert cpu3["bugchecked_here"] and cpu3["idle"] and cpu3["draining_dpcs"]
    assert [x["bugchecked_here"] for x in d["cpus"]] == [False, False, False, True]
    rows = [(q["kind"], x["symbol"], x["type"]) for q in cpu3["queues"] for x in q["dpcs"]]
    assert rows == [("normal", "ndis!ndisMTimerObjectDpc", "DpcObject"), ("normal", "nt!PpmPerfAction", "DpcObject"),
                    ("normal", "nt!PopExecuteProcessorCallback", "DpcObject"),
                    ("threaded", "nt!KiDpcWatchdog", "ThreadedDpcObject")]
    assert [q["depth"] for q in cpu3["queues"]] == [3, 1]
    assert cpu3["watchdog"] == {"dpc_time_ticks": 0x501, "dpc_time_limit_ticks": 0x500, "watchdog_ticks": 0x1a2,
                                "watchdog_period_ticks": 0x4e20}
    assert cpu3["running"] == {"kind": "dpc", "function": "ndis!ndisInterruptDpc", "frame": "athwbx+0x161751",
                               "module": "athwbx.sys", "spinning_in": "nt!KeAcquireSpinLockRaiseToDpc"}
    assert cpu3["dpc_routine_active"] and cpu3["current_dpc_routine"] is None   # 8.1 has no CurrentDpcRoutine
    assert all(q["dpcs"] == [] for x in d["cpus"][:3] for q in x["queues"])


def test_cumulative_133_shows_every_processor_and_names_what_ran():
    d = run("dpcs", "dpc_133_cumulative")
    c = d["culprit"]
    assert (c["module"], c["function"], c["cpu"], c["spinning"]) == ("BusyNet.sys", "BusyNet!RxDpc", 0, False)
    assert "cumulatively" in c["reason"]
    doing = [(x["cpu"], x["idle"], (x["running"] or {}).get("kind"), (x["running"] or {}).get("function"))
             for x in d["cpus"]]
    assert doing == [(0, True, "dpc", "BusyNet!RxDpc"), (1, False, "dpc", "BusyNet!TxCompleteDpc"),
                     (2, False, None, None), (3, True, None, None)]
    assert [sum(q["depth"] for q in x["queues"]) for x in d["cpus"]] == [8, 2, 0, 0]
    # Windows 11 names: DpcTimeLimitTicks, DpcWatchdogPeriodTicks; CurrentDpcRoutine is there
    assert d["cpus"][0]["watchdog"]["watchdog_period_ticks"] == 0x1e00
    assert d["cpus"][0]["current_dpc_symbol"] == "BusyNet!RxDpc"
    assert d["cpus"][0]["current_dpc_routine"].startswith("0x")
    assert d["cpus"][1]["process"] == "smss.exe"
    assert d["cpus"][1]["thread"].startswith("0x") and d["cpus"][1]["cid"].count(".") == 1


def test_no_culprit_without_a_0x133():
    for name in ("eresource_deadlock", "power_9f3_filter", "timerres_win10"):
        d = run("dpcs", name)
        assert d["culprit"] is None and len(d["cpus"]) >= 1


def test_unreadable_dpc_is_a_row_and_the_walk_goes_on():
    d = run("dpcs", "corrupt_dpc_lists")
    normal = d["cpus"][3]["queues"][0]
    assert [(x["symbol"], x["readable"], x["reached_via"]) for x in normal["dpcs"]] == [
        ("ndis!ndisMTimerObjectDpc", True, None), ("nt!PpmPerfAction", True, None), (None, False, None),
        ("nt!PopExecuteProcessorCallback", True, "Blink")]
    assert normal["complete"] is False
    assert d["culprit"]["module"] == "athwbx.sys"            # the stack still tells
    assert {w["kind"] for w in d["warnings"]} == {"unreadable"}


@pytest.mark.parametrize("build", BUILDS)
def test_dpc_queues_and_watchdog_names_on_every_build(build):
    b = ScenarioBuilder(build)
    b.process("System", 4)
    b.processor(0)
    t = b.thread(b.process("Idle", 0, listed=False), 0, "nt!KiIdleLoop", state="Running",
                 frames=["nt!KiIdleLoop+0x5a"])
    b.set_current(0, t, idle_thread=t)
    b.module("Drv", "Drv.sys")
    k1 = b.queue_dpc(0, "Drv!DpcA", importance=2, context=0x1234)
    k2 = b.queue_dpc(0, "Drv!DpcB")
    k3 = b.queue_dpc(0, "Drv!ThreadedDpc", threaded=True, importance=0)
    b.dpc_watchdog(0, time_count=7, time_limit=0x500, watchdog_count=9, watchdog_period=0x1e00)
    target = cached(b)
    diags = Diagnostics()
    [c] = cpus(target, diags)
    assert diags == [] and c.idle
    normal, threaded = c.queues
    assert [(d.address, target.describe(d.routine), d.importance, d.type) for d in normal.dpcs] == [
        (k1, "Drv!DpcA", "High", "DpcObject"), (k2, "Drv!DpcB", "Medium", "DpcObject")]
    assert normal.dpcs[0].context == 0x1234 and (normal.depth, normal.complete) == (2, True)
    assert [(d.address, d.importance, d.type) for d in threaded.dpcs] == [(k3, "Low", "ThreadedDpcObject")]
    assert c.watchdog == {"dpc_time_count": 7, "dpc_time_limit": 0x500, "watchdog_count": 9,
                          "watchdog_period": 0x1e00}


def test_seed_133_on_windows_7_gives_the_same_culprit():
    r = analyze_dpcs(cached(dpc_133_athwbx("win7sp1-x64-6.1.7601.24540")))
    assert (r.culprit.module, r.culprit.cpu, r.culprit.spinning) == ("athwbx.sys", 3, True)
    assert [len(q.dpcs) for q in r.cpus[3].cpu.queues] == [3, 1]


# -- timerres --------------------------------------------------------------------------------------

def test_seed_timerres_table_never_shows_the_head():
    d = run("timerres", "timerres_win81")
    # svchost.exe asked for 1 ms once and stopped: a stale entry, never the finest live request
    assert d["rows"] == [{"process": "svchost.exe", "pid": 0x3a8, "eprocess": d["rows"][0]["eprocess"],
                          "requested": 0, "smallest": 10000, "requested_ms": None, "smallest_ms": 1.0,
                          "finest": False, "readable": True, "state": "stale",
                          "set_timer_resolution": False, "ignored": None, "sets_clock": False}]
    assert (d["current"], d["maximum"], d["minimum"]) == (10000, 156250, 5000)
    text = run("timerres", "timerres_win81", "text")
    assert "???" not in text and "0x9c3d2000" not in text
    assert "CLOCK 1.000 ms: set by drivers (ExSetTimerResolution)." in text
    assert "svchost.exe, PID 936 (0x3a8): asked for 1.000 ms once and no longer asks" in text


def test_timerres_finest_first_and_flagged():
    d = run("timerres", "timerres_win10")
    assert [(r["process"], r["state"], r["requested"], r["smallest"], r["finest"]) for r in d["rows"]] == [
        ("RtkAudUService", "live", 5000, 5000, True),        # ImageFileName keeps 14 characters
        ("obs64.exe", "live", 5000, 5000, True),
        ("chrome.exe", "live", 10000, 10000, False), ("Spotify.exe", "live", 10000, 10000, False),
        ("msedge.exe", "stale", 0, 10000, False)]           # asked once: last, never finest
    assert d["current"] == 5000 and d["current_ms"] == 0.5


def test_timerres_on_a_target_nobody_raised():
    d = run("timerres", "eresource_deadlock")
    assert d["rows"] == [] and d["current"] == d["maximum"] == 156250 and d["warnings"] == []
    assert "No process has asked" in run("timerres", "eresource_deadlock", "text")


@pytest.mark.parametrize("build", BUILDS)
def test_timer_resolution_fields_on_every_build(build):
    b = ScenarioBuilder(build)
    b.process("System", 4)
    p1, p2 = b.process("a.exe", 0x10), b.process("b.exe", 0x20)
    b.set_timer_resolution(p1, 5000)
    b.set_timer_resolution(p2, 10000)
    b.set_timer_resolution(p2, 0, set=False)
    diags = Diagnostics()
    reqs, complete = requests(cached(b), diags)
    assert complete and diags == []
    # the kernel inserts at the head: b.exe (second to ask) comes first; b.exe asks no more
    assert [(r.name, r.pid, r.requested, r.smallest, r.state, r.finest) for r in reqs] == [
        ("b.exe", 0x20, 0, 10000, "stale", None), ("a.exe", 0x10, 5000, 5000, "live", 5000)]


def test_timerres_loop_is_cut_and_said():
    d = run("timerres", "corrupt_dpc_lists")
    assert [r["process"] for r in d["rows"]] == ["svchost.exe"] and d["complete"] is False
    assert [w["kind"] for w in d["warnings"]] == ["loop"]


# -- both commands over every corrupted target ------------------------------------------------------

@pytest.mark.parametrize("name", sorted(f[:-8] for f in os.listdir(MOCKS) if f.startswith("corrupt_")))
def test_dpcs_and_timerres_survive_corrupted_targets(name):
    for cmd in ("dpcs", "timerres"):
        for fmt in ("text", "json"):
            code, out, err = run_cli(cmd, "--target", mock(name), "--format", fmt)
            assert code in (0, 3) and err == "" and "Traceback" not in out


def test_dpcs_text_matches_golden():
    out = run("dpcs", "dpc_133_athwbx", "text").replace(mock("dpc_133_athwbx"), "dpc_133_athwbx.json.gz")
    with open(os.path.join(ROOT, "tests", "golden", "dpc_133_athwbx.txt")) as f:
        assert out == f.read()


def test_an_isr_that_ran_too_long_is_cut_at_its_interrupt_dispatch():
    from pykd_ext.analysis.dpc import running_segment
    from pykd_ext.kernel.stacks import frames
    b = ScenarioBuilder(BUILDS[2])
    b.process("System", 4)
    b.module("BadIsr", "BadIsr.sys")
    t = b.thread(b.process("Idle", 0, listed=False), 0, "nt!KiIdleLoop", state="Running", frames=[
        "nt!KeBugCheckEx", "nt!KeClockInterruptNotify+0x8b6", "hal!HalpTimerClockInterrupt+0x10",
        "nt!KiCallInterruptServiceRoutine+0xa5", "nt!KiInterruptDispatchNoLockNoEtw+0x37",
        "BadIsr!PollHardware+0x91", "BadIsr!Isr+0x20", "nt!KiCallInterruptServiceRoutine+0x6e",
        "nt!KiInterruptSubDispatch+0x11c", "nt!KiInterruptDispatch+0x37", "nt!KiIdleLoop+0x9e"])
    s = running_segment(frames(cached(b), t))
    assert s.kind == "ISR" and s.routine.symbol == "BadIsr!Isr+0x20"
    assert s.driver.module.image == "BadIsr.sys" and s.spin is None
    assert [f.symbol for f in s.frames] == ["BadIsr!PollHardware+0x91", "BadIsr!Isr+0x20"]


def test_text_of_the_other_targets_states_their_findings():
    assert "CULPRIT: BusyNet.sys" in run("dpcs", "dpc_133_cumulative", "text")
    text = run("timerres", "timerres_win10", "text")
    assert "TIMER RESOLUTION REQUESTS (5), 4 live, live finest first" in text
    assert text.index("obs64.exe") < text.index("chrome.exe") < text.index("msedge.exe")


@pytest.mark.parametrize("build", BUILDS)
def test_a_high_importance_dpc_is_queued_at_the_head(build):
    """KeInsertQueueDpc puts a HighImportance DPC at the head of the queue, the others at the
    tail; an empty 8.1+ queue's LastEntry points at its own ListHead and reads as empty."""
    b = ScenarioBuilder(build)
    b.module("Net", "Net.sys")
    b.processor(0)
    b.processor(1)
    low = b.queue_dpc(0, "Net!Rx")
    high = b.queue_dpc(0, "Net!Urgent", importance=2)
    last = b.queue_dpc(0, "Net!Tx")
    got = cpus(cached(b), Diagnostics())
    assert [d.address for d in got[0].queues[0].dpcs] == [high, low, last]
    assert got[1].queues[0].dpcs == [] and got[1].queues[0].complete
