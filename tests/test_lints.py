"""Lints (issue 16, point 6): waits at DISPATCH_LEVEL (seed 004) and a driver's unload running
while its DriverEntry / AddDevice / dispatch routine still runs (seed 002), each a finding with
the module, the threads, the evidence, why it is wrong and where to read."""
import json
import os

import pytest

from conftest import MOCKS, WIN7, WIN10, WIN11, cached, mock, run_cli
from pykd_ext.analysis.lints import run_lints
from pykd_ext.mock.builder import ScenarioBuilder
from pykd_ext.mock.scenarios import SYSTEM_START, WAIT_TOP, WORKER
from pykd_ext.target.cache import CachedTarget
from pykd_ext.target.mock import MockTarget


def lints_of(name):
    return run_lints(CachedTarget(MockTarget.load(mock(name)))).findings


def triage_doc(name):
    code, out, err = run_cli("triage", "--target", mock(name), "--format", "json")
    assert code == 0 and err == ""
    return json.loads(out)


# -- wait-at-dispatch ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["lint_wait_at_dispatch", "lint_wait_at_dispatch_win11"])
def test_a_wait_at_dispatch_level_is_found_and_the_apc_level_one_is_not(name):
    found = lints_of(name)
    assert [f.lint for f in found] == ["wait-at-dispatch"]
    f = found[0]
    assert f.module == "AcmeUsb.sys"                       # the client driver, not Wdf01000 on top of it
    assert [t["cid"] for t in f.threads] == ["09c4.0a10"]  # not the APC_LEVEL waiter 0004.02a0
    t = f.threads[0]
    assert t["wait_irql"] == 2 and t["state"] == "Waiting" and t["frame"] == "AcmeUsb!EvtIoRead+0x5c"
    assert "KeWaitForSingleObject" in f.read and f.why


def _waiter(build, irql, sleep=False):
    b = ScenarioBuilder(build)
    system = b.process("System", 4)
    b.module("SlowDrv", "SlowDrv.sys")
    t = b.thread(system, 0x40, "SlowDrv!Worker", frames=WAIT_TOP + ["SlowDrv!Poll+0x10"] + SYSTEM_START)
    if sleep:
        b.sleep(t, irql=irql)
    else:
        b.wait_on(t, [b.event()], "Executive", irql=irql)
    return cached(b)


@pytest.mark.parametrize("build", [WIN7, WIN10, WIN11])
@pytest.mark.parametrize("sleep", [False, True])
def test_wait_irql_as_the_wait_routines_record_it(build, sleep):
    # KeWaitForSingleObject and KeDelayExecutionThread both record the caller's IRQL
    assert [f.module for f in run_lints(_waiter(build, 2, sleep)).findings] == ["SlowDrv.sys"]
    assert run_lints(_waiter(build, 1, sleep)).findings == []
    assert run_lints(_waiter(build, 0, sleep)).findings == []


# -- unload-during-init -------------------------------------------------------------------------

def _roles(name):
    found = lints_of(name)
    assert [f.lint for f in found] == ["unload-during-init"]
    f = found[0]
    assert f.module == "IsoFlt.sys" and "osr.com" in f.read
    roles = {t["role"]: t for t in f.threads}
    assert sorted(roles) == ["init", "unload"]
    return f, roles


def test_seed_002_a_minifilter_unloaded_by_the_filter_manager_while_driver_entry_runs():
    """As the seed's two threads: both System workers, the filter manager running IsoFlt's
    unload callback (which faults: 0x7E) while IopLoadDriver's DriverEntry still runs."""
    f, roles = _roles("lint_unload_during_init")
    assert roles["unload"]["cid"] == "0004.0038" and roles["unload"]["frame"] == "IsoFlt!UnloadCallback+0xd3"
    assert roles["init"]["cid"] == "0004.0044" and roles["init"]["frame"] == "IsoFlt!GsDriverEntry+0x20"
    assert any("called by fltmgr!FltpDoUnloadFilter" in e for e in f.evidence)
    t = MockTarget.load(mock("lint_unload_during_init"))
    drv = next(w for w in f.evidence if "DriverInit" in w).split("driver object ")[1].split()[0]
    from pykd_ext.kernel.views import Struct
    d = Struct(t, "_DRIVER_OBJECT", int(drv, 16))
    assert d["DriverInit"] == t.symbol("IsoFlt!GsDriverEntry") and d["DriverUnload"] == 0


def test_a_legacy_driver_unloaded_by_the_io_managers_worker_while_driver_entry_runs():
    """The I/O manager's worker runs the DriverUnload DriverEntry already stored; sc.exe,
    which asked for the unload, only waits in IopUnloadDriver and is neither role."""
    f, roles = _roles("lint_unload_during_init_legacy")
    assert roles["unload"]["cid"] == "0004.0038" and roles["unload"]["frame"] == "IsoFlt!IsoUnload+0xd3"
    assert roles["init"]["cid"] == "0004.0044"
    assert not any(t["cid"] == "1d4c.1d50" for t in f.threads)
    t = MockTarget.load(mock("lint_unload_during_init_legacy"))
    drv = next(w for w in f.evidence if "DriverUnload" in w).split("driver object ")[1].split()[0]
    from pykd_ext.kernel.views import Struct
    d = Struct(t, "_DRIVER_OBJECT", int(drv, 16))
    assert d["DriverUnload"] == t.symbol("IsoFlt!IsoUnload") and d["DriverInit"] == t.symbol("IsoFlt!GsDriverEntry")


def _two_threads(unload_frames, init_frames, build=WIN10, keep_object=True, unload_routine="Acme!Shutdown",
                 major=None, same_thread=False):
    """Acme's driver object (DriverInit Acme!Start, DriverUnload `unload_routine`), one thread
    running `unload_frames` and one `init_frames`; the unloading thread keeps the driver object
    in its caller's frame when `keep_object`."""
    b = ScenarioBuilder(build)
    system = b.process("System", 4)
    b.module("Acme", "Acme.sys")
    drv = b.load_driver_object("\\Driver\\Acme", "Acme", "Acme!Start")
    b.driver_entry_sets(drv, unload=unload_routine, add_device="Acme!AddDev", major=major or {})
    u = b.thread(system, 0x40, "nt!ExpWorkerThread", state="Running", frames=unload_frames + WORKER)
    if keep_object:
        b.stack_word(u, "nt!ExpWorkerThread", 0x30, drv)
    if not same_thread:
        b.thread(system, 0x44, "nt!ExpWorkerThread", state="Running", frames=init_frames + WORKER)
    return cached(b)


def test_routines_are_matched_by_address_not_by_name():
    # the unloading thread keeps the driver object; the other thread runs a dispatch routine
    # under IofCallDriver, which no kernel caller names: MajorFunction[0xe] does
    t = _two_threads(["Acme!Flush+0x10", "Acme!Shutdown+0x22", "nt!IopLoadUnloadDriver+0x2b5"],
                     ["Acme!Helper+0x8", "Acme!Ioctl+0x31", "nt!IofCallDriver+0x55"], major={0xe: "Acme!Ioctl"})
    found = run_lints(t).findings
    assert [(f.lint, f.module) for f in found] == [("unload-during-init", "Acme.sys")]
    roles = {x["role"]: x["frame"] for x in found[0].threads}
    assert roles == {"unload": "Acme!Shutdown+0x22", "init": "Acme!Ioctl+0x31"}
    assert any("Acme!Ioctl+0x31: its function starts at MajorFunction[0xe]" in e for e in found[0].evidence)
    assert any("Acme!Shutdown+0x22: its function starts at DriverUnload" in e for e in found[0].evidence)


def test_names_alone_are_not_enough():
    # the same stacks with the driver object out of reach: no kernel caller says which frame
    # is the unload routine, and "DriverUnload" as a name proves nothing
    t = _two_threads(["Acme!Flush+0x10", "Acme!DriverUnload+0x22", "nt!IopSomething+0x40"],
                     ["Acme!Helper+0x8", "Acme!DriverEntry+0x31", "nt!IopSomethingElse+0x55"], keep_object=False,
                     unload_routine="Acme!DriverUnload")
    assert run_lints(t).findings == []


def test_the_kernel_callers_name_the_routines_when_the_object_is_out_of_reach():
    t = _two_threads(["Acme!Flush+0x10", "Acme!Shutdown+0x22", "nt!IopLoadUnloadDriver+0x2b5"],
                     ["Acme!Helper+0x8", "Acme!Start+0x31", "nt!IopLoadDriver+0xa07"], keep_object=False)
    found = run_lints(t).findings
    assert [f.module for f in found] == ["Acme.sys"]
    assert all("called by nt!Iop" in e for e in found[0].evidence)


def test_driver_entry_calling_its_own_unload_is_not_a_race():
    # a DriverEntry that fails and cleans up through its unload routine: one thread only
    t = _two_threads(["Acme!Shutdown+0x22", "Acme!Start+0x31", "nt!IopLoadDriver+0xa07"], [], same_thread=True)
    assert run_lints(t).findings == []


# -- no false positives, and the surface ----------------------------------------------------------

OTHERS = sorted(f[:-8] for f in os.listdir(MOCKS) if f.endswith(".json.gz") and not f.startswith("lint_"))


@pytest.mark.parametrize("name", OTHERS)
def test_the_lints_say_nothing_on_the_other_shipped_targets(name):
    assert lints_of(name) == []


def test_triage_shows_the_lints_in_json_and_text():
    d = triage_doc("lint_wait_at_dispatch")
    assert [sorted(x) for x in d["lints"]] == [sorted(["lint", "module", "threads", "evidence", "why", "read"])]
    assert d["lints"][0]["lint"] == "wait-at-dispatch" and d["lints"][0]["threads"][0]["thread"].startswith("0x")
    # nothing stronger on this hang: the lint is the verdict
    assert d["verdict"]["module"] == "AcmeUsb.sys" and d["signature"] == "NO_BUGCHECK_AcmeUsb.sys!EvtIoRead"
    code, out, err = run_cli("triage", "--target", mock("lint_unload_during_init"), "--no-color")
    assert "== lints ==" in out and "unload-during-init in IsoFlt.sys" in out
    assert out.index("VERDICT") < out.index("== lints ==") < out.index("== deadlock ==")
    assert triage_doc("eresource_deadlock")["lints"] == []


def test_a_load_through_the_load_unload_worker_is_not_an_unload():
    # Windows 7's nt!IopLoadUnloadDriver also runs loads: IopLoadDriver between it and the
    # driver makes the driver frame an entry point, not an unload routine
    t = _two_threads(["Acme!Start+0x31", "nt!IopLoadDriver+0xa07", "nt!IopLoadUnloadDriver+0x55"],
                     ["Acme!Helper+0x8", "Acme!Ioctl+0x31", "nt!IofCallDriver+0x55"], keep_object=False,
                     major={0xe: "Acme!Ioctl"})
    assert run_lints(t).findings == []
