"""triage (issue 16, point 1): the bug check routed to what applies, a verdict first (what, the
driver, the evidence, how complete), a signature for grouping dumps, JSON with the same."""
import json
import os

import pytest

from conftest import MOCKS, mock, run_cli


def doc(name):
    code, out, err = run_cli("triage", "--target", mock(name), "--format", "json")
    d = json.loads(out)
    assert code == (0 if d["complete"] else 3) and err == ""      # 3: partial results
    return d


@pytest.mark.parametrize("name, route, driver, signature", [
    ("power_9f4_zteusbnet", ["powerirps"], "ZTEusbnet.sys", "0x9F_4_ZTEusbnet.sys"),
    ("power_9f4_other_irp", ["powerirps"], "AcmeBus.sys", "0x9F_4_AcmeBus.sys"),
    ("power_9f4_irp_chain", ["powerirps"], "AcmeHub.sys", "0x9F_4_AcmeHub.sys"),
    ("power_9f3_filter", ["powerirps"], "AcmeFlt.sys", "0x9F_3_AcmeFlt.sys"),
    ("dpc_133_athwbx", ["dpcs", "running", "deadlock"], "athwbx.sys", "0x133_0_athwbx.sys"),       # ndis's DPC, athwbx's code: no function of athwbx to name
    ("eresource_deadlock", ["deadlock", "powerirps"], "TestDriver.sys", "NO_BUGCHECK_TestDriver.sys!FileMoveThread"),
    ("hang_no_cycle", ["deadlock", "powerirps"], "SlowFlt.sys", "NO_BUGCHECK_SlowFlt.sys!WaitForService"),
    ("livedump_1cc_eresource", ["deadlock", "powerirps"], "SlowFlt.sys", "0x1CC_SlowFlt.sys!WaitForService"),
    ("pushlock_recursive", ["deadlock", "powerirps"], "FsFilter.sys", "NO_BUGCHECK_FsFilter.sys!LookupStream"),
    ("spinlock_queued_abba", ["deadlock", "powerirps"], "NetFlt.sys", "NO_BUGCHECK_NetFlt.sys!FilterSendLocked"),
    ("bugcheck_101_hung_cpu", ["dpcs", "running", "deadlock"], "NicDrv.sys", "0x101_NicDrv.sys!TxReapRing"),
    ("bugcheck_d1_lock_holder", ["running", "deadlock"], "AcmeNet.sys", "0xD1_AcmeNet.sys!ParsePacket"),
    ("lint_unload_during_init", ["deadlock", "powerirps"], "IsoFlt.sys", "0x7E_C0000005_IsoFlt.sys!StopWorkerQueues"),
    ("lint_unload_during_init_legacy", ["deadlock", "powerirps"], "IsoFlt.sys", "NO_BUGCHECK_IsoFlt.sys!IsoUnload"),
    ("lint_wait_at_dispatch", ["deadlock", "powerirps"], "AcmeUsb.sys", "NO_BUGCHECK_AcmeUsb.sys!EvtIoRead"),
])
def test_routes_verdicts_and_signatures(name, route, driver, signature):
    d = doc(name)
    # the shared keys (README: "JSON output"), then the verdict first
    assert list(d)[:7] == ["command", "target", "build", "complete", "interrupted", "verdict", "signature"]
    assert d["route"] == route and sorted(d["sections"]) == sorted(route)
    assert d["verdict"]["module"] == driver and d["signature"] == signature
    assert d["complete"] is True and d["verdict"]["reading"] == "complete"


def test_the_verdict_comes_first_in_text():
    code, out, err = run_cli("triage", "--target", mock("eresource_deadlock"), "--no-color")
    lines = out.splitlines()
    assert lines[1] == "no bug check: read as a hang"
    assert lines[2] == "VERDICT: deadlock: 2 threads, 2 locks (ERESOURCE)"
    assert "== deadlock ==" in out and "== powerirps ==" in out
    assert out.index("VERDICT") < out.index("== deadlock ==")


@pytest.mark.parametrize("name", sorted(f[:-8] for f in os.listdir(MOCKS) if f.startswith("corrupt_")))
def test_corrupted_targets_read_as_partial(name):
    d = doc(name)
    assert d["complete"] is False and d["verdict"]["why_partial"] and d["warnings"]
    code, out, err = run_cli("triage", "--target", mock(name), "--no-color")
    assert code == 3 and out.splitlines()[1].startswith("PARTIAL RESULTS: ")


SHIPPED = sorted(f[:-8] for f in os.listdir(MOCKS) if f.endswith(".json.gz"))


@pytest.mark.parametrize("name", SHIPPED)
def test_the_verdict_agrees_with_the_specialised_command(name):
    d = doc(name)
    bc = d["bugcheck"]
    driver = d["verdict"]["module"]
    if bc and bc["code"] == "0x9f":
        p = json.loads(run_cli("powerirps", "--target", mock(name), "--format", "json")[1])
        assert driver == (p["culprit"]["module"] if p["culprit"] else None)
    elif bc and bc["code"] == "0x101":
        # the processor parameter 3's PRCB belongs to, as running shows it
        p = json.loads(run_cli("running", "--target", mock(name), "--format", "json")[1])
        cpu = next((c for c in p["cpus"] if c["prcb"] == bc["args"][2]), None)
        assert driver == (cpu["module"] if cpu else None)
    elif bc and bc["code"] in ("0xa", "0xd1"):
        # the module of the faulting instruction, which running shows on the bug-checking processor
        p = json.loads(run_cli("running", "--target", mock(name), "--format", "json")[1])
        here = next(c for c in p["cpus"] if c["bugchecked_here"])
        assert driver == here["module"]
    elif bc and bc["code"] == "0x133":
        p = json.loads(run_cli("dpcs", "--target", mock(name), "--format", "json")[1])
        assert driver == (p["culprit"]["module"] if p["culprit"] else None)
    else:
        dl = json.loads(run_cli("deadlock", "--target", mock(name), "--format", "json")[1])
        if dl["cycles"]:
            assert driver in dl["cycles"][0]["modules"]
        elif dl["chains"]:
            drivers = {c["module"] for c in dl["chains"]} | {dl["threads"][w]["module"]
                                                           for c in dl["chains"] for w in c["waiters"]
                                                           if w in dl["threads"]}
            assert driver in drivers
        else:
            p = json.loads(run_cli("powerirps", "--target", mock(name), "--format", "json")[1])
            culprit = p["culprit"]["module"] if p["culprit"] else None
            if culprit is None and d["lints"]:
                # nothing stronger: the verdict is a lint's
                assert driver in {x["module"] for x in d["lints"]}
            else:
                assert driver == culprit
