"""Live dumps (Microsoft's "Kernel Live Dump Code Reference"): the system kept running, so they
are read as hangs; 0x1CC names the ERESOURCE that timed out, 0x1A3 the thread whose call has
not returned, 0x1D4 the UCSI command.  The findings asserted are read from memory; the bug check
parameters only say where to look."""
import json

import pytest

from conftest import WIN10, cached, mock, run_cli
from pykd_ext.analysis.triage import triage
from pykd_ext.errors import SymbolNotFound
from pykd_ext.target.mock import MockTarget
from test_waitgraph import ACQ_X, START, TOP, eresource_abba


def test_a_live_dump_keeps_its_code_in_the_header_not_in_kibugcheckdata():
    t = MockTarget.load(mock("livedump_1cc_eresource"))
    assert t.bugcheck().code == 0x1CC
    with pytest.raises(SymbolNotFound):
        t.symbol("nt!KiBugCheckData")            # nothing bug checked: the kernel did not write it


def test_0x1cc_is_the_chain_of_the_resource_that_timed_out():
    code, out, err = run_cli("triage", "--target", mock("livedump_1cc_eresource"), "--format", "json")
    assert code == 0, err
    d = json.loads(out)
    dl = json.loads(run_cli("deadlock", "--target", mock("livedump_1cc_eresource"), "--format", "json")[1])
    lock = d["bugcheck"]["args"][0]
    chain = next(ch for ch in dl["chains"] if any(e["lock"] == lock for p in ch["paths"] for e in p))
    assert chain["root"] in d["verdict"]["what"] and lock in d["verdict"]["what"]
    assert d["signature"] == "0x1CC_SlowFlt.sys!WaitForService"
    assert any("a live dump" in e for e in d["verdict"]["evidence"])


def _abba(build=WIN10):
    return eresource_abba(build)


def test_0x1cc_on_a_lock_in_a_cycle_says_the_cycle():
    b, (t1, t2), (r1, r2) = _abba()
    b.live_dump(0x1CC, r2, t1, 1, 120)
    t = triage(cached(b))
    assert "timed out after 120 s" in t.verdict.what and "deadlock: 2 threads, 2 locks" in t.verdict.what
    assert t.verdict.driver == "Drv.sys" and t.signature.startswith("0x1CC_Drv.sys!")


def test_0x1cc_on_a_lock_nobody_holds_now_says_so():
    b, threads, locks = _abba()
    idle = b.eresource(name="Drv!gIdle")
    b.live_dump(0x1CC, idle, threads[0], 3, 120)
    t = triage(cached(b))
    said = t.verdict.evidence[0]
    assert "no thread holds or waits for it" in said and "0x%x" % idle in said


def test_0x1a3_follows_the_thread_whose_call_has_not_returned():
    b, (t1, t2), _ = _abba()
    w = b.thread(b.process("svc.exe", 0x200), 0x30, "Drv!Caller",
                 frames=["nt!KiSwapContext+0x76", "nt!KeWaitForSingleObject+0x233", "Drv!WaitReply+0x19",
                         "Drv!Caller+0x40"] + START)
    b.wait_on(w, [b.event()], "Executive")
    b.live_dump(0x1A3, 0, w, 30000, 0)
    t = triage(cached(b))
    assert "0x%x's call has not returned in 30000 ms" % w in t.verdict.what
    assert t.verdict.driver == "Drv.sys" and t.verdict.function == "Drv!WaitReply"
    b2, (t1, t2), _ = _abba()
    b2.live_dump(0x1A3, 0, t1, 30000, 0)         # a thread in the cycle: its chain is the answer
    v = triage(cached(b2)).verdict
    assert "waits behind" in v.what or "deadlock" in v.what


def test_0x1d4_names_the_ucsi_command():
    b, _, _ = _abba()
    b.live_dump(0x1D4, 0, 0x6, 0xffffc00012345000, 0)
    v = triage(cached(b)).verdict
    assert any("UCSI command 0x6 timed out" in e and "0xffffc00012345000" in e for e in v.evidence)


def test_0x1cc_names_the_cycle_its_lock_is_in_even_when_it_is_not_the_first():
    b, (t1, t2), (r1, r2) = _abba()
    p = b.process("Other.exe", 0x40)
    b.module("Oth", "Oth.sys")
    u1 = b.thread(p, 0x50, "Oth!C", frames=TOP + ACQ_X + ["Oth!C+0x10"] + START)
    u2 = b.thread(p, 0x54, "Oth!D", frames=TOP + ACQ_X + ["Oth!D+0x10"] + START)
    r3, r4 = b.eresource(name="Oth!gThree"), b.eresource(name="Oth!gFour")
    b.acquire_resource(r3, u1)
    b.acquire_resource(r4, u2)
    b.wait_resource(u1, r4)
    b.wait_resource(u2, r3)
    for lock, module in ((r4, "Oth.sys"), (r1, "Drv.sys")):
        b.live_dump(0x1CC, lock, u1, 1, 120)
        t = triage(cached(b))
        assert "it is in a deadlock: 2 threads, 2 locks" in t.verdict.what
        assert t.verdict.driver == module and t.signature.startswith("0x1CC_%s!" % module)


def test_0x1cc_on_a_lock_nobody_holds_keeps_what_else_was_found():
    b, threads, locks = _abba()
    b.live_dump(0x1CC, 0, threads[0], 3, 120)      # parameter 1 names nothing the dump holds
    t = triage(cached(b))
    assert t.verdict.what.startswith("deadlock: 2 threads") and t.verdict.driver == "Drv.sys"
    assert t.verdict.evidence[0].startswith("ERESOURCE 0x0 timed out") and "no thread holds" in t.verdict.evidence[0]


def test_0x1a3_with_no_such_thread_names_no_driver():
    b, _, _ = _abba()
    b.live_dump(0x1A3, 0, 0xfffffa80deadbee0, 30000, 0)
    v = triage(cached(b)).verdict
    assert "could not be unwound" in v.what or "unreadable" in v.what
    assert "kernel only" not in v.what


def test_a_manual_crash_is_read_as_the_hang_it_was_taken_of():
    """0xE2 MANUALLY_INITIATED_CRASH (a crash forced from the keyboard or an NMI on a hung
    machine): the hang route, and the same verdict the machine gives with no bug check."""
    b, (t1, t2), _ = _abba()
    plain = triage(cached(b))
    b.bugcheck(0xE2, 0, 0, 0, 0)
    t = triage(cached(b))
    assert t.route == plain.route == ("deadlock", "powerirps")
    assert t.verdict.what == plain.verdict.what and t.verdict.driver == plain.verdict.driver == "Drv.sys"
    assert t.signature == "0xE2_" + plain.signature[len("NO_BUGCHECK_"):]
