"""0x9F when the blocked thread waits for an IRP of another major function (issue 16, point 5):
the PnP-lock holder (or a power worker) runs driver A's dispatch and waits there for an IOCTL
it sent synchronously (IoBuildDeviceIoControlRequest + KeWaitForSingleObject on its event),
which driver B below marked pending and keeps.  B is blamed, with the chain
P <- thread <- Q @ B; a completed IRP, a user-mode request and the IRP the thread is itself
working on are not.  Every address asserted is one the builder returned."""
import json
import os

import pytest

from pykd_ext.analysis.power import analyze_power
from pykd_ext.mock.builder import ScenarioBuilder
from pykd_ext.mock.scenarios import POWER_WORKER, QUERY_REMOVE_HOLDER, SYSTEM_START, WAIT_TOP, _background
from pykd_ext.render.power import report_dict

from conftest import ROOT, WIN7, WIN10, cached, mock, run_cli

IOCTL = 0x222004            # CTL_CODE(FILE_DEVICE_UNKNOWN, 0x801, METHOD_BUFFERED, FILE_ANY_ACCESS)
IRP_MJ_PNP, IRP_MN_QUERY_REMOVE_DEVICE = 0x1b, 0x01


def holder_waits_for_ioctl(build=WIN10, complete=False, earlier_to_other=False, waits_on_irp_event=True,
                           user_mode=False, lock_chain=False, read=False):
    """The PnP-lock holder runs AcmeCam's query-remove handler, which sends an IOCTL to
    AcmeBus's PDO below it and waits; returns (builder, {name: address the builder made}).
    complete: AcmeBus completed the IOCTL (IofCompleteRequest; the IopCompleteRequest APC has
    not run: it is still on the thread's list).  earlier_to_other: before, the handler sent
    an IOCTL to OtherDrv's device, which completed it.  waits_on_irp_event=False: the thread
    waits on an event of AcmeCam's device extension instead of the IRP's UserEvent.
    user_mode: the IOCTL carries RequestorMode UserMode, as NtDeviceIoControlFile writes
    PreviousMode there (ReactOS ntoskrnl/io/iomgr/iofunc.c IopDeviceFsIoControl).
    lock_chain: the thread waits instead on a mutex held by OtherDrv's thread, which sleeps.
    read: the request is a read (IoBuildSynchronousFsdRequest(IRP_MJ_READ)) instead of an IOCTL."""
    b = ScenarioBuilder(build)
    system = b.process("System", 4)
    _background(b, system)
    for name in ("AcmeCam", "AcmeBus", "OtherDrv"):
        b.module(name, name + ".sys", size=0x20000)
    cam, bus, other = (b.driver_object("\\Driver\\" + n) for n in ("AcmeCam", "AcmeBus", "OtherDrv"))
    fdo, pdo = b.device_stack([(cam, None, 0x280), (bus, "AcmeBusPdo-01", 0x120)])
    b.devnode(pdo, "ACMEBUS\\VID_1D6B&PID_0C01\\4&1f2c3b4d&0&1", "AcmeCam")
    other_dev, _ = b.device_object(other, 0x40, "OtherDev0")
    holder = b.thread(system, 0x74, "nt!ExpWorkerThread", waited_ticks=38463, frames=WAIT_TOP + QUERY_REMOVE_HOLDER)
    b.acquire_resource(b.symbols["nt!PiEngineLock"], holder)
    pnp = b.iop_synchronous_call(holder, pdo, IRP_MJ_PNP, IRP_MN_QUERY_REMOVE_DEVICE)
    frame = b.frame_sp(holder, "AcmeCam!SendIoctlSynchronously")
    made = {"holder": holder, "pnp": pnp, "fdo": fdo, "pdo": pdo, "earlier": None, "system": system, "cam": cam}
    if earlier_to_other:
        earlier = b.io_build_device_io_control_request(holder, IOCTL - 4, other_dev, b.event(notification=False),
                                                       b.alloc(0x10), output_length=8)
        b.io_call_driver(earlier, other_dev)
        b.io_mark_irp_pending(earlier)
        b.io_complete_request(earlier)
        made["earlier"] = earlier
    event = b.event(notification=False, address=frame + 0x28)
    if read:
        ioctl = b.io_build_synchronous_fsd_request(holder, 0x03, pdo, event, frame + 0x18, length=0x200, offset=0x1000)
    else:
        ioctl = b.io_build_device_io_control_request(holder, IOCTL, pdo, event, frame + 0x18)
    if user_mode:
        b.put("_IRP", ioctl, RequestorMode=1)
    b.io_call_driver(ioctl, pdo)
    b.io_mark_irp_pending(ioctl)
    if complete:
        b.io_complete_request(ioctl)
    waited = event if waits_on_irp_event else b.event(notification=False, address=fdo + b.size("_DEVICE_OBJECT"))
    if lock_chain:
        sleeper = b.thread(system, 0x1d4, "OtherDrv!PollThread", frames=[
            "nt!KiSwapContext+0x76", "nt!KeDelayExecutionThread+0x122", "OtherDrv!PollThread+0x2e"])
        waited = b.mutant(owner=sleeper, address=b.global_("OtherDrv!gLock", b.size("_KMUTANT")))
        b.sleep(sleeper)
    b.wait_on(holder, [waited], wait_reason="Executive")
    b.bugcheck(0x9F, 4, 0x258, holder, b.global_("nt!TRIAGE_9F_PNP", 0x30))
    made.update(ioctl=ioctl, event=event, waited=waited)
    return b, made


def hx(v):
    return "0x%x" % v


@pytest.mark.parametrize("build", [WIN10, WIN7])
def test_the_driver_holding_the_ioctl_is_blamed_not_the_one_waiting(build):
    b, made = holder_waits_for_ioctl(build)
    r = analyze_power(cached(b))
    c = r.culprit
    assert c.module == "AcmeBus.sys"                           # not AcmeCam.sys, where the holder waits
    assert c.blocked.address == made["holder"] and c.thread == made["holder"]
    assert c.pending.irp.address == made["pnp"]                 # P: the query-remove, at AcmeCam's FDO
    assert c.pending.location.device == made["fdo"]
    q = c.waits_for                                             # Q: the IOCTL, at AcmeBus's PDO
    assert q.irp.address == made["ioctl"]
    assert q.location.device == made["pdo"] and q.device.address == made["pdo"]
    assert (q.location.major, q.location.ioctl, q.location.number, q.irp.stack_count) == (0x0e, IOCTL, 1, 1)
    assert q.location.pending and q.strong and q.irp.user_event == made["event"]
    assert "waits in AcmeCam.sys for IRP %s (IRP_MJ_DEVICE_CONTROL" % hx(made["ioctl"]) in c.reason
    assert "which neither completed it nor passed it down" in c.reason
    assert [w.irp.address for w in r.holder.depends_on] == [made["ioctl"]]


def test_json_depends_on_and_the_culprit_chain():
    b, made = holder_waits_for_ioctl()
    r = analyze_power(cached(b))
    d = json.loads(json.dumps(report_dict(r, "t", WIN10)))
    dep = d["pnp_lock_holder"]["depends_on"]
    assert len(dep) == 1
    q = dep[0]
    irp_size = b.size("_IRP")
    assert q["irp"] == hx(made["ioctl"]) and q["major"] == "IRP_MJ_DEVICE_CONTROL"
    assert q["io_control_code"] == hx(IOCTL)
    assert q["location"] == {"number": 1, "of": 1, "address": hx(made["ioctl"] + irp_size)}
    assert q["pending_at"]["device"] == hx(made["pdo"]) and q["pending_at"]["device_name"] == "AcmeBusPdo-01"
    assert (q["pending_at"]["driver"], q["pending_at"]["module"]) == ("\\Driver\\AcmeBus", "AcmeBus.sys")
    assert q["marked_pending"] is True and q["user_event"] == hx(made["event"])
    assert any("UserEvent" in e for e in q["evidence"])
    c = d["culprit"]
    assert c["module"] == "AcmeBus.sys" and c["depends_on"] == dep
    assert [x["link"] for x in c["chain"]] == ["irp", "thread", "irp"]
    assert [x.get("irp") or x.get("thread") for x in c["chain"]] == [hx(made["pnp"]), hx(made["holder"]),
                                                                      hx(made["ioctl"])]
    assert c["chain"][0]["pending_at"]["device"] == hx(made["fdo"]) and c["chain"][1]["module"] == "AcmeCam.sys"
    # the holder's role under its PnP IRP says the same
    role = next(t for p in d["pending_irps"] for t in p["threads"] if t["thread"] == hx(made["holder"]))
    assert role["depends_on"] == dep


def test_a_synchronous_read_is_followed_the_same_way():
    b, made = holder_waits_for_ioctl(read=True)
    r = analyze_power(cached(b))
    q = r.culprit.waits_for
    assert r.culprit.module == "AcmeBus.sys" and q.irp.address == made["ioctl"] and q.strong
    assert (q.location.major_name, q.location.ioctl, q.request) == ("IRP_MJ_READ", None, "IRP_MJ_READ")
    assert "for IRP %s (IRP_MJ_READ) pending at AcmeBus.sys" % hx(made["ioctl"]) in r.culprit.reason


def test_a_completed_ioctl_is_not_blamed():
    b, made = holder_waits_for_ioctl(complete=True)
    r = analyze_power(cached(b))
    assert r.holder.depends_on == []
    assert r.culprit.waits_for is None and r.culprit.module == "AcmeCam.sys"


def test_an_earlier_completed_ioctl_to_another_driver_is_passed_over():
    b, made = holder_waits_for_ioctl(earlier_to_other=True)
    r = analyze_power(cached(b))
    assert [w.irp.address for w in r.holder.depends_on] == [made["ioctl"]]
    assert r.culprit.module == "AcmeBus.sys" and "OtherDrv" not in r.culprit.reason


def test_without_the_user_event_the_irp_list_still_leads_to_the_holding_driver():
    b, made = holder_waits_for_ioctl(waits_on_irp_event=False)
    r = analyze_power(cached(b))
    q = r.culprit.waits_for
    assert r.culprit.module == "AcmeBus.sys" and q.irp.address == made["ioctl"]
    assert q.strong is False
    assert any("no frame in AcmeBus.sys" in e for e in q.evidence)
    assert not any("UserEvent" in e for e in q.evidence)


def test_a_user_mode_request_is_not_taken_for_what_the_thread_waits_for():
    b, made = holder_waits_for_ioctl(waits_on_irp_event=False, user_mode=True)
    r = analyze_power(cached(b))
    assert r.holder.depends_on == [] and r.culprit.module == "AcmeCam.sys"


def test_a_holder_waiting_on_a_lock_keeps_its_wait_chain():
    b, made = holder_waits_for_ioctl(waits_on_irp_event=False, lock_chain=True)
    r = analyze_power(cached(b))
    assert r.holder.depends_on == [] and r.culprit.waits_for is None
    assert r.culprit.module == "OtherDrv.sys"             # the sleeping owner at the end of the chain


def test_the_irp_a_thread_is_working_on_is_no_dependency():
    # seed 003: the holder runs ZTEusbnet's dispatch of the very PnP IRP pending at ZTEusbnet
    d = json.loads(run_cli("powerirps", "--target", mock("power_9f4_zteusbnet"), "--format", "json")[1])
    assert d["pnp_lock_holder"]["depends_on"] == []
    assert d["culprit"]["module"] == "ZTEusbnet.sys" and d["culprit"]["chain"] is None


def test_a_power_worker_waiting_for_an_ioctl_blames_its_holder():
    """0x9F/3: P = SET_POWER D3 at AcmeNic, whose dispatch the power worker runs and where it
    waits for an IOCTL it sent to pci's PDO, which pci keeps: P <- worker <- Q @ pci."""
    b = ScenarioBuilder(WIN10)
    system = b.process("System", 4)
    _background(b, system)
    for name in ("AcmeNic", "pci"):
        b.module(name, name + ".sys", size=0x40000)
    nic, pci = b.driver_object("\\Driver\\AcmeNic"), b.driver_object("\\Driver\\pci")
    fdo, pdo = b.device_stack([(nic, "NDMP7", 0x900), (pci, "NTPNP_PCI0014", 0x200)])
    b.devnode(pdo, "PCI\\VEN_8086&DEV_15B8\\3&11583659&0&FE", "AcmeNic")
    d3 = b.po_request_power_irp(pdo, 0x02, "DevicePowerState", "PowerDeviceD3")
    worker = b.thread(system, 0x5c, "nt!PopIrpWorker", waited_ticks=38000,
                      frames=WAIT_TOP + ["AcmeNic!QuiesceHardware+0x44", "AcmeNic!DispatchPower+0x4e",
                                         "nt!IofCallDriver+0x55"] + POWER_WORKER)
    event = b.event(notification=False, address=b.frame_sp(worker, "AcmeNic!QuiesceHardware") + 0x28)
    q = b.io_build_device_io_control_request(worker, IOCTL, pdo, event,
                                             b.frame_sp(worker, "AcmeNic!QuiesceHardware") + 0x18)
    b.io_call_driver(q, pdo)
    b.io_mark_irp_pending(q)
    b.wait_on(worker, [event], wait_reason="Executive")
    b.bugcheck(0x9F, 3, pdo, b.global_("nt!TRIAGE_9F_POWER", 0x20), d3)
    r = analyze_power(cached(b))
    c = r.culprit
    assert c.module == "pci.sys" and c.irp == d3 and c.thread == worker
    assert c.waits_for.irp.address == q and c.waits_for.location.device == pdo
    d = report_dict(r, "t", WIN10)
    assert [x.get("irp") or x.get("thread") for x in d["culprit"]["chain"]] == [hx(d3), hx(worker), hx(q)]


@pytest.mark.parametrize("name", ["power_9f4_other_irp", "power_9f4_other_irp_win7"])
def test_triage_blames_the_driver_holding_the_ioctl(name):
    code, out, err = run_cli("triage", "--target", mock(name), "--format", "json")
    d = json.loads(out)
    assert code == 0 and err == ""
    assert d["verdict"]["module"] == "AcmeBus.sys" and d["signature"] == "0x9F_4_AcmeBus.sys"
    p = json.loads(run_cli("powerirps", "--target", mock(name), "--format", "json")[1])
    q = p["culprit"]["depends_on"][0]
    # the IRP blamed is the one on the holder's IrpList whose current location is at AcmeBus's device
    assert q["pending_at"]["module"] == "AcmeBus.sys" and q["major"] == "IRP_MJ_DEVICE_CONTROL"
    assert any(q["irp"] in e for e in d["verdict"]["evidence"])


def test_text_matches_golden():
    code, out, err = run_cli("powerirps", "--target", mock("power_9f4_other_irp"))
    out = out.replace(mock("power_9f4_other_irp"), "power_9f4_other_irp.json.gz")
    with open(os.path.join(ROOT, "tests", "golden", "power_9f4_other_irp.txt")) as f:
        assert out == f.read()


# -- the chain followed further (issue 16, point 5, last part) ------------------------------------------

INTERNAL = 0x2a200b         # CTL_CODE(FILE_DEVICE_BUS_EXTENDER, 0x802, METHOD_NEITHER, FILE_ANY_ACCESS)
LOWER = ("AcmeHub", "AcmePort", "AcmeRoot", "AcmeCtl", "AcmeLast")


def irp_chain(irps=2, loop=False, build=WIN10):
    """The PnP-lock holder waits in AcmeCam for IOCTL Q pending at AcmeBus's PDO; a worker
    thread of AcmeBus (System, AcmeBus!WorkerRoutine) sent an internal IOCTL synchronously to
    a device of the next driver (AcmeHub, AcmePort, ...), which marked it pending -- `irps`
    IRPs waited for in all.  loop: the last worker's IRP goes instead to a control device of
    AcmeCam, the driver the holder waits in.  Returns (builder, {name: address it made})."""
    b, made = holder_waits_for_ioctl(build)
    drivers = ("AcmeBus",) + LOWER
    for name in LOWER:
        b.module(name, name + ".sys", size=0x20000)
    made["irps"], made["threads"] = [made["ioctl"]], [made["holder"]]
    made["devices"] = [made["pdo"]]
    for i in range(irps - 1):
        here = drivers[i]
        if loop and i == irps - 2:
            below, _ = b.device_object(made["cam"], 0x40, "AcmeCamCtl")
        else:
            below, _ = b.device_object(b.driver_object("\\Driver\\" + drivers[i + 1]), 0x80,
                                       "%sPdo" % drivers[i + 1])
        worker = b.thread(made["system"], 0x90 + 4 * i, "%s!WorkerRoutine" % here, wait_reason="Executive",
                          waited_ticks=38000 - i, frames=WAIT_TOP + ["%s!SendDownSynchronously+0x71" % here,
                                                                     "%s!WorkerRoutine+0x5c" % here] + SYSTEM_START)
        sp = b.frame_sp(worker, "%s!SendDownSynchronously" % here)
        event = b.event(notification=False, address=sp + 0x30)
        irp = b.io_build_device_io_control_request(worker, INTERNAL, below, event, sp + 0x20, internal=True)
        b.io_call_driver(irp, below)
        b.io_mark_irp_pending(irp)
        b.wait_on(worker, [event], wait_reason="Executive")
        made["irps"].append(irp)
        made["threads"].append(worker)
        made["devices"].append(below)
    return b, made


def test_the_chain_is_followed_to_the_driver_at_its_end():
    """P @ AcmeCam <- holder <- Q @ AcmeBus <- AcmeBus's worker <- R @ AcmeHub: AcmeHub is blamed."""
    b, made = irp_chain(2)
    r = analyze_power(cached(b))
    c = r.culprit
    assert c.module == "AcmeHub.sys"
    assert c.thread == made["holder"] and c.irp == made["pnp"] and c.waits_for.irp.address == made["ioctl"]
    assert [(u.address, x.irp.address) for u, x in c.further] == [(made["threads"][1], made["irps"][1])]
    u, x = c.further[0]
    assert x.location.device == made["devices"][1] and x.location.major == 0x0f and x.strong
    assert "AcmeBus.sys, the driver holding IRP %s" % hx(made["ioctl"]) in u.role
    assert c.chain_note is None
    assert "an inference" in c.reason and "pending at AcmeHub.sys" in c.reason
    d = json.loads(json.dumps(report_dict(r, "t", WIN10)))
    cu = d["culprit"]
    assert [x["link"] for x in cu["chain"]] == ["irp", "thread", "irp", "thread", "irp"]
    assert [x.get("irp") or x.get("thread") for x in cu["chain"]] == [
        hx(made["pnp"]), hx(made["holder"]), hx(made["ioctl"]), hx(made["threads"][1]), hx(made["irps"][1])]
    assert [x["inferred"] for x in cu["chain"] if x["link"] == "thread"] == [False, True]
    assert cu["chain"][3]["module"] == "AcmeBus.sys"
    assert [w["irp"] for w in cu["depends_on"]] == [hx(a) for a in made["irps"]]
    assert cu["depends_on"][1]["major"] == "IRP_MJ_INTERNAL_DEVICE_CONTROL"
    assert cu["depends_on"][1]["pending_at"]["device"] == hx(made["devices"][1])
    assert cu["chain_note"] is None
    from pykd_ext.render.power import links                 # DML: every thread and IRP of the chain links
    assert all(links(r).get(a, "").startswith("!thread") for a in made["threads"])
    assert all(links(r).get(a, "").startswith("!irp") for a in made["irps"])


def test_one_level_when_no_thread_waits_inside_the_holding_driver():
    b, made = holder_waits_for_ioctl()
    c = analyze_power(cached(b)).culprit
    assert c.module == "AcmeBus.sys" and c.further == [] and c.chain_note is None


def test_a_loop_ends_the_chain_with_a_note():
    """AcmeBus's worker waits for an IRP pending at AcmeCam, where the holder waits: a loop."""
    b, made = irp_chain(2, loop=True)
    r = analyze_power(cached(b))
    c = r.culprit
    assert [(u.address, x.irp.address) for u, x in c.further] == [(made["threads"][1], made["irps"][1])]
    assert c.further[0][1].location.device == made["devices"][1]
    assert c.module == "AcmeCam.sys"                        # the end of the chain: the IRP held by AcmeCam
    assert "loops" in c.chain_note and hx(made["holder"]) in c.chain_note
    d = report_dict(r, "t", WIN10)
    assert d["culprit"]["chain_note"] == c.chain_note and len(d["culprit"]["chain"]) == 5


def test_the_chain_is_cut_at_the_depth_cap():
    from pykd_ext.analysis.power import MAX_CHAIN_IRPS
    b, made = irp_chain(MAX_CHAIN_IRPS + 1)
    c = analyze_power(cached(b)).culprit
    assert 1 + len(c.further) == MAX_CHAIN_IRPS
    assert [x.irp.address for _, x in c.further] == made["irps"][1:MAX_CHAIN_IRPS]
    assert c.module == LOWER[MAX_CHAIN_IRPS - 2] + ".sys"
    assert "cut after %d IRPs" % MAX_CHAIN_IRPS in c.chain_note and hx(made["irps"][MAX_CHAIN_IRPS]) in c.chain_note
    b, made = irp_chain(MAX_CHAIN_IRPS)                      # exactly the cap: followed to its end, no note
    c = analyze_power(cached(b)).culprit
    assert c.module == LOWER[MAX_CHAIN_IRPS - 2] + ".sys" and c.chain_note is None


def test_the_shipped_chain_target_blames_acmehub():
    code, out, err = run_cli("powerirps", "--target", mock("power_9f4_irp_chain"), "--format", "json")
    d = json.loads(out)
    assert code == 0 and err == ""
    cu = d["culprit"]
    assert cu["module"] == "AcmeHub.sys"
    assert [x["link"] for x in cu["chain"]] == ["irp", "thread", "irp", "thread", "irp"]
    assert [x["module"] for x in cu["chain"] if x["link"] == "thread"] == ["AcmeCam.sys", "AcmeBus.sys"]
    assert [w["pending_at"]["module"] for w in cu["depends_on"]] == ["AcmeBus.sys", "AcmeHub.sys"]
    assert cu["depends_on"][1]["major"] == "IRP_MJ_INTERNAL_DEVICE_CONTROL"
    t = json.loads(run_cli("triage", "--target", mock("power_9f4_irp_chain"), "--format", "json")[1])
    assert t["verdict"]["module"] == "AcmeHub.sys" and t["signature"] == "0x9F_4_AcmeHub.sys"
    assert any(cu["depends_on"][1]["irp"] in e for e in t["verdict"]["evidence"])
    code, text, _ = run_cli("powerirps", "--target", mock("power_9f4_irp_chain"))
    chain = " ".join(line.strip() for line in text.split("CULPRIT")[1].split("PnP-LOCK")[0].split("chain", 1)[1]
                     .splitlines()).strip()
    assert chain.count(" <- ") == 4 and chain.endswith("pending at AcmeHub.sys, current location 1 of 1")
