"""powerirps end to end: each power target's culprit in text and JSON, the facts behind it
(where the IRP is pending, the blocked thread, its wait chain), no false alarm on a healthy
machine, and every command surviving the corrupted targets."""
import io
import json
import os

import pytest

from pykd_ext.analysis.power import analyze_power
from pykd_ext.mock.scenarios import power_9f3_filter, power_9f3_mutex_chain, power_9f4_zteusbnet
from pykd_ext.target.cache import CachedTarget

from conftest import MOCKS, ROOT, mock, run_cli
from test_partial_results import BreakOnStack

# target -> (culprit module, IRP, thread) as the memory has them; None: no culprit
CULPRITS = {
    "power_9f4_zteusbnet": ("ZTEusbnet.sys", "0xfffffa8000c0a4a0", "0xfffffa8000c09fd0"),
    "power_9f3_filter": ("AcmeFlt.sys", "0xfffffa8000c127b0", None),
    "power_9f3_mutex_chain": ("OemHelper.sys", "0xfffffa8000c11ba0", "0xfffffa8000c13090"),
    "corrupt_power_lists": ("AcmeFlt.sys", "0xfffffa8000c127b0", None),
    "power_clean": None,
}


def powerirps(name, fmt="json"):
    code, out, err = run_cli("powerirps", "--target", mock(name), "--format", fmt)
    assert err == ""
    complete = json.loads(run_cli("powerirps", "--target", mock(name), "--format", "json")[1])["complete"]
    assert code == (0 if complete else 3)             # 3: partial results
    return json.loads(out) if fmt == "json" else out


@pytest.mark.parametrize("name", sorted(CULPRITS))
def test_culprit_in_json_and_text(name):
    d = powerirps(name)
    text = powerirps(name, "text")
    want = CULPRITS[name]
    if want is None:
        assert d["culprit"] is None
        assert "CULPRIT" not in text
        return
    c = d["culprit"]
    assert (c["module"], c["irp"], c["thread"]) == want
    assert c["reason"].endswith(".") and c["reason"].count(". ") == 0      # one sentence
    assert "CULPRIT: %s" % want[0] in text
    assert c["irp"] in text


@pytest.mark.parametrize("name", sorted(f[:-8] for f in os.listdir(MOCKS)
                                        if f.endswith(".json.gz") and not f.startswith("power_")
                                        and f != "corrupt_power_lists.json.gz"))
def test_no_power_culprit_on_targets_without_a_power_problem(name):
    d = powerirps(name)
    assert d["culprit"] is None and d["pending_irps"] == []
    assert d["bugcheck"] is None or d["bugcheck"]["code"] != "0x9f"        # no 0x9F here


def test_seed_003_the_pnp_lock_holder():
    d = powerirps("power_9f4_zteusbnet")
    bc = d["bugcheck"]
    assert (bc["code"], bc["subcode"], bc["name"]) == ("0x9f", "0x4", "DRIVER_POWER_STATE_FAILURE")
    assert bc["args"][1] == "0x258"
    h = d["pnp_lock_holder"]
    assert h["thread"] == bc["args"][2] == d["culprit"]["thread"]
    assert (h["cid"], h["process"], h["state"], h["wait_reason"]) == ("0004.0048", "System", "Waiting", "Executive")
    assert h["wait_seconds"] == pytest.approx(600.984, abs=0.001)        # 38463 ticks of 15.625 ms
    assert [o["type"] for o in h["waits_on_objects"]] == ["EventNotificationObject"]
    assert [(x["lock_name"], x["lock_kind"], x["mode"]) for x in h["holds"]] == [
        ("nt!PiEngineLock", "eresource", "exclusive"), ("nt!IopDeviceTreeLock", "eresource", "shared")]
    assert h["module"] == "ZTEusbnet.sys"
    [p] = d["pending_irps"]
    assert p["irp"] == d["culprit"]["irp"]
    assert (p["major"], p["minor"]) == ("IRP_MJ_PNP", "IRP_MN_SURPRISE_REMOVAL")
    assert p["pending_at"]["driver"] == "\\Driver\\ZTEusbnet" and p["pending_at"]["device_name"] == "NDMP14"
    assert [x["driver"] for x in p["device_stack"]] == ["\\Driver\\ZTEusbnet", "\\Driver\\usbccgp"]
    assert p["devnode"]["service"] == "ZTEusbnet"
    assert p["devnode"]["instance_path"] == "USB\\VID_19D2&PID_0063&MI_04\\6&200b5242&0&0004"
    assert p["found_in"] == ["IrpList of thread %s" % h["thread"]]
    # Windows 7's symbols lack _POP_IRP_DATA: the IRP came from the holder's own IRP list
    assert d["sources"]["pop_irp_list"].startswith("not typed")
    # the irp command agrees on where it is pending
    irp = json.loads(run_cli("irp", p["irp"], "--target", mock("power_9f4_zteusbnet"), "--format", "json")[1])
    assert irp["pending_at"]["module"] == "ZTEusbnet.sys" and irp["thread"] == h["thread"]


def test_filter_holds_the_d3_irp_and_the_bus_driver_is_not_blamed():
    d = powerirps("power_9f3_filter")
    assert d["bugcheck"]["subcode"] == "0x3" and d["bugcheck"]["args"][3] == d["culprit"]["irp"]
    d3, wake = d["pending_irps"]
    assert (d3["minor"], d3["power_type"], d3["power_state"]) == ("IRP_MN_SET_POWER", "DevicePowerState", "D3")
    assert d3["pending_at"]["module"] == "AcmeFlt.sys" and d3["threads"] == []
    assert [x["module"] for x in d3["device_stack"]] == ["AcmeFlt.sys", "AcmeNic.sys", "pci.sys"]
    assert [x["pending_here"] for x in d3["device_stack"]] == [True, False, False]
    assert d3["device_stack"][-1]["device"] == d["bugcheck"]["args"][1]        # arg2: the PDO
    assert d3["age_seconds"] == 600.0 and d3["found_in"] == ["bug check arg4", "PopIrpList"]
    # CurrentLocation 3 of StackCount 5, numbered as !irp does: "current 3 of 5"
    assert d3["location"] == {"number": 3, "of": 5, "address": d3["location"]["address"]}
    # the wait-wake IRP at the bus driver is listed, marked expected, and not blamed
    assert (wake["minor"], wake["pending_at"]["module"], wake["expected"]) == ("IRP_MN_WAIT_WAKE", "pci.sys", True)
    assert d["culprit"]["module"] != "pci.sys" and d["culprit"]["pending_at"]["module"] == "AcmeFlt.sys"
    assert "neither completed it nor passed it down" in d["culprit"]["reason"]


def test_mutex_chain_blames_the_sleeping_owner_in_another_driver():
    d = powerirps("power_9f3_mutex_chain")
    c = d["culprit"]
    assert c["pending_at"]["module"] == "AcmeAudio.sys"
    [p] = d["pending_irps"]
    assert (p["power_type"], p["power_state"]) == ("SystemPowerState", "S4")
    worker = p["threads"][0]
    assert worker["thread"] == c["blocked_thread"] and worker["start"] == "nt!PopIrpWorker"
    assert worker["role"].startswith("the power manager's IRP worker")
    ch = worker["wait_chain"]
    assert [(e["lock_kind"], e["lock_name"]) for e in ch["edges"]] == [
        ("mutant", "AcmeAudio!gCodecMutex"), ("mutant", "OemHelper!gHelperMutex")]
    assert ch["edges"][-1]["held_by"] == ch["root"] == c["root_blocker"] == c["thread"]
    assert ch["root_module"] == "OemHelper.sys" and ch["reason"].startswith(
        "sleeping (KeDelayExecutionThread, DelayExecution) while holding the lock")
    assert "2 locks" in c["reason"] and "OemHelper.sys" in c["reason"]


def test_healthy_machine_no_false_alarm():
    d = powerirps("power_clean")
    text = powerirps("power_clean", "text")
    assert d["bugcheck"] is None and d["culprit"] is None
    wake, d0 = d["pending_irps"]
    assert (wake["minor"], wake["expected"], wake["pending_at"]["module"]) == ("IRP_MN_WAIT_WAKE", True, "USBHUB3.sys")
    assert (d0["power_state"], d0["expected"], d0["held_seconds"]) == ("D0", False, 2.0)
    assert d["allocated_not_at_a_driver"] == 1
    assert "No stuck power IRP" in text and "WARNINGS" not in text


def test_corrupt_power_lists_keep_the_culprit_and_warn():
    d = powerirps("corrupt_power_lists")
    kinds = sorted(w["kind"] for w in d["warnings"])
    assert kinds == ["loop", "loop", "unreadable"]
    assert any("0xfffffa80deadb000" in w["message"] for w in d["warnings"])
    assert len(d["pending_irps"]) == 2


def test_text_matches_golden():
    out = powerirps("power_9f4_zteusbnet", "text").replace(mock("power_9f4_zteusbnet"), "power_9f4_zteusbnet.json.gz")
    with open(os.path.join(ROOT, "tests", "golden", "power_9f4_zteusbnet.txt")) as f:
        assert out == f.read()


def test_ctrl_break_keeps_the_bug_check_and_says_so():
    b = power_9f4_zteusbnet()
    r = analyze_power(CachedTarget(BreakOnStack(b.target(), 1)))
    assert r.interrupted == "CTRL+BREAK"
    assert r.bugcheck.subcode == 4
    assert any(d.kind == "interrupted" for d in r.diagnostics)


def test_a_break_while_reading_workers_keeps_the_irps_found():
    b = power_9f3_mutex_chain()
    # three unwinds for the wait-for graph, the fourth (the idle power worker) is broken
    r = analyze_power(CachedTarget(BreakOnStack(b.target(), 4)))
    assert r.interrupted == "CTRL+BREAK"
    assert r.bugcheck.subcode == 3
    assert [p.irp.address for p in r.pending] == [r.bugcheck.args[3]]
    assert r.culprit.reason.startswith("From what was read before the interruption")


# -- every command over the corrupted targets: no traceback, partial results, clear errors ---------

CORRUPT = sorted(f[:-8] for f in os.listdir(MOCKS) if f.startswith("corrupt_"))
UNREADABLE = "0xfffffa80deadb000"


@pytest.mark.parametrize("name", CORRUPT)
def test_all_commands_survive_corrupted_targets(name):
    for fmt in ("text", "json"):
        code, out, err = run_cli("powerirps", "--target", mock(name), "--format", fmt)
        assert code in (0, 3) and err == "" and "Traceback" not in out
    d = json.loads(run_cli("powerirps", "--target", mock(name), "--format", "json")[1])
    irps = [p["irp"] for p in d["pending_irps"]] + [UNREADABLE]
    devices = [x["device"] for p in d["pending_irps"] for x in p["device_stack"]] + [UNREADABLE]
    dl = json.loads(run_cli("deadlock", "--target", mock(name), "--format", "json")[1])
    threads = list(dl["threads"])[:1]                  # a thread is neither an IRP nor a device
    for cmd, addrs in (("irp", irps + threads), ("devstack", devices + threads)):
        for a in addrs:
            for fmt in ("text", "json"):
                code, out, err = run_cli(cmd, a, "--target", mock(name), "--format", fmt)
                assert code in (0, 2, 3), (cmd, a)
                if code == 2:
                    assert out == "" and err.count("\n") == 1 and a[2:] in err
                else:
                    assert err == "" and "Traceback" not in out
                    if fmt == "json":
                        assert code == (0 if json.loads(out)["complete"] else 3)


# -- the other subcodes, in words ------------------------------------------------------------------

def _with_bugcheck(*args):
    b = power_9f3_filter_builder()
    b.bugcheck(0x9F, *args)
    return analyze_power(CachedTarget(b.target()))


def power_9f3_filter_builder():
    return power_9f3_filter()


def _devices(b_report):
    stack = b_report.pending[0].stack.devices
    return stack[0].address, stack[1].address, stack[1].driver.address, stack[-1].address


def test_subcode_2_names_the_driver_of_the_device_in_arg3():
    top, fdo, nic_driver, pdo = _devices(_with_bugcheck(3, 0, 0, 0))
    r = _with_bugcheck(2, top, fdo, nic_driver)
    assert r.bugcheck.meaning.endswith("without calling PoStartNextPowerIrp")
    assert r.culprit.module == "AcmeNic.sys" and r.culprit.irp is None
    assert "\\Driver\\AcmeNic" in r.culprit.reason


def test_subcode_1_names_the_driver_of_the_device_being_freed():
    top, fdo, nic_driver, pdo = _devices(_with_bugcheck(3, 0, 0, 0))
    r = _with_bugcheck(1, top)
    assert r.culprit.module == "AcmeFlt.sys" and "being freed" in r.culprit.reason


@pytest.mark.parametrize("sub, words", [(5, "directed power transition in the required time"),
                                        (6, "directed power transition callback"),
                                        (0x77, "not documented")])
def test_subcodes_described_in_words_name_no_driver(sub, words):
    r = _with_bugcheck(sub, 0xfffffa8000c11f50, 0)
    assert r.culprit.module is None and words in r.culprit.reason


def test_subcode_3_with_an_unreadable_irp_says_so():
    r = _with_bugcheck(3, 0xfffffa8000c11f50, 0, 0xfffffa80deadb000)
    assert r.culprit.module is None and "0xfffffa80deadb000" in r.culprit.reason
    assert "unreadable" in r.culprit.reason
    assert any(d.kind == "unreadable" and d.address == 0xfffffa80deadb000 for d in r.diagnostics)


def test_another_bug_check_still_reports_a_stuck_power_irp():
    from pykd_ext.render.power import render_text, report_dict
    from pykd_ext.render.style import Style
    b = power_9f3_filter_builder()
    b.bugcheck(0x133, 0, 0x501, 0x500, 0)
    r = analyze_power(CachedTarget(b.target()))
    assert r.bugcheck.subcode is None and len(r.pending) == 2
    assert r.culprit.module == "AcmeFlt.sys"           # held 10 minutes: stuck, whatever crashed
    buf = io.StringIO()
    render_text(report_dict(r, "t", "b"), buf, Style("plain"), "h")
    assert "bug check 0x133 DPC_WATCHDOG_VIOLATION: not a power failure" in buf.getvalue()
