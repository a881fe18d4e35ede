"""Issue 13, I/O and power: what the real kernel writes, read the way the real kernel means it.

- 0x9F subcode 0x500 blames Parameter 4's device (Microsoft's bug check 0x9F page: Parameter 3
  is the target device's device object, Parameter 4 the device object).
- Power IRP ages on a layout set typed as the real symbols type it: InterruptTime a 12-byte
  _KSYSTEM_TIME; a torn High1Time/High2Time pair is reported, not used.
- A completed IRP (CurrentLocation = StackCount + 2, IofCompleteRequest) reads as completed,
  an unsent one (StackCount + 1) as not yet sent, on every build.
- The builder's IRP routines write what IoAllocateIrp / IoCallDriver / IoMarkIrpPending /
  IoCompleteRequest / IopQueueThreadIrp / PoRequestPowerIrp write.
"""
import copy
import json

import pytest

from conftest import BUILDS, WIN7, WIN10, mock, run_cli
from pykd_ext.analysis.power import analyze_power
from pykd_ext.kernel.io import decode_irp
from pykd_ext.mock import scenarios
from pykd_ext.mock.builder import ScenarioBuilder
from pykd_ext.target.cache import CachedTarget
from pykd_ext.target.layouts import load_shipped
from pykd_ext.target.mock import MockTarget

POP_BUILDS = [b for b in BUILDS if b != WIN7]          # _POP_IRP_DATA is typed from 8.1 on

KSYSTEM_TIME = {"kind": "struct", "size": 12, "fields": {      # dt nt!_KSYSTEM_TIME
    "LowPart": {"offset": 0, "size": 4, "type": "unsigned long"},
    "High1Time": {"offset": 4, "size": 4, "type": "long"},
    "High2Time": {"offset": 8, "size": 4, "type": "long"}}}


def _target(b, interrupt_time=None):
    """The builder's memory under a layout set derived from the shipped one; interrupt_time:
    None (as shipped), "ksystem_time" (as pykd reads the real symbols: InterruptTime a
    _KSYSTEM_TIME, the type itself readable) or "u64" (an older recording)."""
    doc = json.loads(json.dumps(b.document()))
    if interrupt_time is not None:
        lays = copy.deepcopy(load_shipped(b.build).to_json())
        structs = lays["structs"]
        shared = structs["_KUSER_SHARED_DATA"]
        structs.pop("_KSYSTEM_TIME", None)
        if interrupt_time == "ksystem_time":
            shared["fields"]["InterruptTime"] = {"offset": 8, "size": 12, "type": "_KSYSTEM_TIME"}
            structs["_KSYSTEM_TIME"] = KSYSTEM_TIME
        else:
            shared["fields"]["InterruptTime"] = {"offset": 8, "size": 8, "type": "unsigned long long"}
        doc["layouts"] = lays
    return CachedTarget(MockTarget(doc, name="t"))


def _filter_devices(b):
    r = analyze_power(CachedTarget(b.target()))
    stack = r.pending[0].stack.devices
    return stack[0].address, stack[1].address      # AcmeFlt's filter (top), AcmeNic's FDO


# -- 0x9F / 0x500 ---------------------------------------------------------------------------

def test_0x500_blames_the_driver_of_parameter_4_not_parameter_3():
    b = scenarios.power_9f3_filter(WIN10)
    top, fdo = _filter_devices(b)
    b.bugcheck(0x9F, 0x500, 0, top, fdo)      # arg3: the target device; arg4: the device object
    r = analyze_power(CachedTarget(b.target()))
    assert r.culprit.module == "AcmeNic.sys", r.culprit.reason
    assert "0x%x" % fdo in r.culprit.reason and "0x%x" % top in r.culprit.reason
    assert "\\Driver\\AcmeNic" in r.culprit.reason


@pytest.mark.parametrize("build", BUILDS)
def test_0x500_scenario_on_each_build(build):
    b = scenarios.power_9f500(build)
    t = CachedTarget(b.target())
    r = analyze_power(t)
    bc = t.bugcheck()
    top, fdo = bc.args[2], bc.args[3]
    assert r.culprit.module == "AcmeNic.sys"
    assert "arg4" in r.culprit.reason and "0x%x" % fdo in r.culprit.reason
    assert "target device (arg3) is 0x%x" % top in r.culprit.reason and "AcmeFlt" in r.culprit.reason
    code, out, err = run_cli("powerirps", "--target", _save(b, t))
    assert code == 0 and "CULPRIT: AcmeNic.sys" in out


def _save(b, t):
    import os
    import tempfile
    p = os.path.join(tempfile.mkdtemp(), "t.json.gz")
    b.save(p)
    return p


# -- ages: InterruptTime as the real symbols type it -------------------------------------------

@pytest.mark.parametrize("build", POP_BUILDS)
def test_ages_with_interrupt_time_typed_as_ksystem_time(build):
    b = scenarios.power_9f3_filter(build)
    r = analyze_power(_target(b, "ksystem_time"))
    d3 = next(p for p in r.pending if p.normal is None)
    assert d3.age == 600.0
    assert not [d for d in r.diagnostics if "IRP ages unknown" in d.message]


@pytest.mark.parametrize("build", POP_BUILDS)
def test_ages_with_interrupt_time_as_an_8_byte_integer_older_recordings(build):
    r = analyze_power(_target(scenarios.power_9f3_filter(build), "u64"))
    assert sorted(p.age for p in r.pending) == [600.0, 5400.0]


@pytest.mark.parametrize("build", POP_BUILDS)
def test_ages_with_the_shipped_supplement(build):
    r = analyze_power(_target(scenarios.power_9f3_filter(build)))
    assert sorted(p.age for p in r.pending) == [600.0, 5400.0]


def test_held_60_s_fires_without_a_bug_check_on_a_ksystem_time_layout():
    b = scenarios.power_9f3_filter(WIN10)
    b.bugcheck_data = None
    r = analyze_power(_target(b, "ksystem_time"))
    assert r.bugcheck is None and r.culprit is not None and r.culprit.module == "AcmeFlt.sys"


def test_a_torn_interrupt_time_is_reported_not_used():
    b = scenarios.power_9f3_filter(WIN10)
    # a snapshot between KeUpdateSystemTime's two stores: High2Time already 15, High1Time 14
    b.set_tick(0x65000, torn=True)
    r = analyze_power(_target(b, "ksystem_time"))
    assert all(p.age is None for p in r.pending)
    torn = [d for d in r.diagnostics if "torn" in d.message]
    assert torn and "High1Time 0xe" in torn[0].message and "High2Time 0xf" in torn[0].message


def test_set_tick_writes_all_three_parts():
    b = ScenarioBuilder(WIN10)
    b.set_tick(0x65000)
    sd = b._shared
    time = 0x65000 * 156250
    assert (b._u32(sd + 8), b._u32(sd + 12), b._u32(sd + 16)) == (time & 0xffffffff, time >> 32, time >> 32)
    assert b._u64(sd + 0x320) == 0x65000 and b._u32(sd + 0x328) == 0


# -- completed and unsent IRPs, on every build ---------------------------------------------

def _pnp_stack(b):
    system = b.process("System", 4)
    b.module("Lower", "Lower.sys")
    b.module("Upper", "Upper.sys")
    upper, lower = b.driver_object("\\Driver\\Upper"), b.driver_object("\\Driver\\Lower")
    top, pdo = b.device_stack([(upper, "UP0", 0x40), (lower, "LOW0", 0x40)])
    t = b.thread(system, 0x48, "nt!ExpWorkerThread", wait_reason="Executive", waited_ticks=3,
                 frames=["nt!KiSwapContext+0x7a", "nt!IopSynchronousCall+0xe1"])
    return t, top, pdo


@pytest.mark.parametrize("build", BUILDS)
def test_a_completed_irp_reads_as_completed(build, tmp_path):
    b = ScenarioBuilder(build)
    t, top, pdo = _pnp_stack(b)
    irp = b.iop_synchronous_call(t, pdo, 0x1b, 0x09)            # IRP_MN_QUERY_CAPABILITIES
    b.io_pass_down(irp, pdo)                                    # Upper passes it down
    b.io_mark_irp_pending(irp)
    b.io_complete_request(irp)                                  # Lower completes it
    x = decode_irp(CachedTarget(b.target()), irp)
    assert (x.stack_count, x.current_location) == (2, 4)
    assert x.state == "completed" and x.current is None and not x.diagnostics
    assert x.pending_returned                # IofCompleteRequest copied SL_PENDING_RETURNED up
    p = str(tmp_path / "t.json.gz")
    b.save(p)
    code, out, err = run_cli("irp", hex(irp), "--target", p)
    assert code == 0 and "completed (CurrentLocation 4 = StackCount + 2" in out
    assert "WARNINGS" not in out and "outside" not in out
    d = json.loads(run_cli("irp", hex(irp), "--target", p, "--format", "json")[1])
    assert d["irp_state"] == "completed" and d["pending_at"] is None and d["warnings"] == []


@pytest.mark.parametrize("build", BUILDS)
def test_an_unsent_irp_reads_as_not_yet_sent(build, tmp_path):
    b = ScenarioBuilder(build)
    irp = b.io_allocate_irp(3)
    x = decode_irp(CachedTarget(b.target()), irp)
    assert (x.current_location, x.state, x.current) == (4, "not yet sent", None) and not x.diagnostics
    p = str(tmp_path / "t.json.gz")
    b.save(p)
    assert "not yet sent to any driver (CurrentLocation 4 = StackCount + 1)" in run_cli("irp", hex(irp), "--target", p)[1]


@pytest.mark.parametrize("build", BUILDS)
def test_beyond_stack_count_plus_2_is_still_bad(build):
    b = ScenarioBuilder(build)
    irp = b.io_allocate_irp(2)
    b.put("_IRP", irp, CurrentLocation=5)
    x = decode_irp(CachedTarget(b.target()), irp)
    assert x.state == "bad" and any("outside 1..4" in d.message for d in x.diagnostics)


@pytest.mark.parametrize("build", POP_BUILDS)
def test_powerirps_counts_a_completed_power_irp_apart(build):
    b = scenarios.power_clean(build)
    mou_pdo = next(a for a, n in _named_devices(b).items() if n == "00000066")
    irp = b.po_request_power_irp(mou_pdo, 0x02, "DevicePowerState", "PowerDeviceD0")
    b.io_complete_request(irp)                 # mouhid completes it at once
    b.pop_irp(irp, mou_pdo, mou_pdo, age_seconds=0.1)
    r = analyze_power(CachedTarget(b.target()))
    assert (r.not_sent, r.completed) == (1, 1) and r.culprit is None
    assert not [d for d in r.diagnostics if "outside" in d.message]


def _named_devices(b):
    """{device: name} of every device in the device tree's stacks."""
    from pykd_ext.kernel.diag import Diagnostics
    from pykd_ext.kernel.io import device_stack
    from pykd_ext.kernel.power import device_tree
    t = CachedTarget(b.target())
    out = {}
    for _, pdo in device_tree(t, Diagnostics()):
        if pdo:
            out.update((d.address, d.name) for d in device_stack(t, pdo).devices)
    return out


# -- the builder's routines write what the kernel's write ------------------------------------

@pytest.mark.parametrize("build", BUILDS)
def test_io_allocate_irp_and_io_call_driver(build):
    b = ScenarioBuilder(build)
    irp = b.io_allocate_irp(3, address=0xfffffa8012345000)      # an address a session gives
    assert irp == 0xfffffa8012345000
    sl = b.size("_IO_STACK_LOCATION")
    first = irp + b.size("_IRP")
    off = lambda f: irp + b.off("_IRP", f)                       # noqa: E731
    assert (b._u8(off("Type")), b._u8(off("StackCount")), b._u8(off("CurrentLocation"))) == (6, 3, 4)
    assert b._u64(off("Tail.Overlay.CurrentStackLocation")) == first + 3 * sl
    assert b._u64(off("ThreadListEntry")) == off("ThreadListEntry")       # InitializeListHead
    dev, _ = b.device_object(b.driver_object("\\Driver\\X"))
    b.io_next_location(irp, MajorFunction=0x16, MinorFunction=0x02)
    b.io_call_driver(irp, dev)
    assert b._u8(off("CurrentLocation")) == 3
    assert b._u64(off("Tail.Overlay.CurrentStackLocation")) == first + 2 * sl
    assert b._u64(first + 2 * sl + b.off("_IO_STACK_LOCATION", "DeviceObject")) == dev
    b.io_mark_irp_pending(irp)
    assert b._u8(first + 2 * sl + b.off("_IO_STACK_LOCATION", "Control")) & 1
    assert b._u8(off("PendingReturned")) == 0          # only IofCompleteRequest sets it
    b.io_complete_request(irp)
    assert b._u8(off("CurrentLocation")) == 5
    assert b._u64(off("Tail.Overlay.CurrentStackLocation")) == first + 4 * sl
    assert b._u8(off("PendingReturned")) == 1
    with pytest.raises(ValueError):
        b.io_complete_request(irp)                      # MULTIPLE_IRP_COMPLETE_REQUESTS


@pytest.mark.parametrize("build", BUILDS)
def test_synchronous_irps_are_on_the_thread_list_power_irps_are_not(build):
    b = ScenarioBuilder(build)
    t, top, pdo = _pnp_stack(b)
    first = b.iop_synchronous_call(t, pdo, 0x1b, 0x09)
    second = b.iop_synchronous_call(t, pdo, 0x1b, 0x14)
    head = t + b.off("_ETHREAD", "IrpList")
    link = b.off("_IRP", "ThreadListEntry")
    assert b._u64(head) == second + link and b._u64(second + link) == first + link    # InsertHeadList
    power = b.po_request_power_irp(pdo, 0x02, "DevicePowerState", "PowerDeviceD3")
    assert b._u64(power + link) == power + link and b._u64(power + b.off("_IRP", "Tail.Overlay.Thread")) == 0
    # StackSize + 2 locations; it is at the top device, the request in the location below Po's own
    x = decode_irp(CachedTarget(b.target()), power)
    assert x.stack_count == 2 + 2 and x.current == 1 and x.current_loc.device == top
    assert x.current_loc.power == ("DevicePowerState", "D3")
    assert x.locations[2].args[0] == pdo and x.locations[2].device == top
    assert x.current_loc.control == 0xe0 and x.current_loc.completion            # IoSetCompletionRoutine
    y = decode_irp(CachedTarget(b.target()), first)
    assert y.thread == t and y.current_loc.device == top and y.status == 0xC00000BB


def test_a_starved_power_worker_blames_what_runs_on_its_processor():
    """0x9F/3 (issue 16, point 5): the IRP worker was preempted inside AcmeNic's dispatch and is
    Ready on processor 1, which BusyDrv's thread occupies: AcmeNic is the victim, BusyDrv is
    blamed -- not 'AcmeNic has neither completed it nor passed it down'."""
    d = json.loads(run_cli("powerirps", "--target", mock("power_9f3_starved"), "--format", "json")[1])
    c = d["culprit"]
    assert c["module"] == "BusyDrv.sys"
    assert "ready to run but not running: it waits for processor 1 (Ready)" in c["reason"]
    assert "neither completed it nor passed it down" not in c["reason"]
    assert c["blocked_thread"] == d["pending_irps"][0]["threads"][0]["thread"]
    t = json.loads(run_cli("triage", "--target", mock("power_9f3_starved"), "--format", "json")[1])
    assert t["signature"] == "0x9F_3_BusyDrv.sys"
