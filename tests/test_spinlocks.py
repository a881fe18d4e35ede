"""Spin locks, laid out as the x64 kernel's routines lay them out (WRK amd64 spinlock.c,
queuelock.c): the processors spinning, the lock their acquire frames name, and the holder --
recorded by the queue for queued spin locks, only a candidate for plain ones -- each with its
evidence label; two processors spinning on each other's queued locks are a deadlock cycle."""
import json

import pytest

from pykd_ext.analysis.dpc import analyze_dpcs
from pykd_ext.analysis.waitgraph import analyze
from pykd_ext.kernel.spinlocks import LOCK_QUEUE_OWNER, LOCK_QUEUE_WAIT, decode_word
from pykd_ext.mock.builder import ScenarioBuilder
from pykd_ext.mock.scenarios import SYSTEM_START, spinlock_plain_spinners, spinlock_queued_abba

from conftest import BUILDS, WIN10, WIN7, cached, mock, run_cli

QUEUED_SPIN = ["nt!KxWaitForLockOwnerShip+0x2a", "nt!KeAcquireInStackQueuedSpinLock+0x7c"]


def _report(a, lock):
    (r,) = [r for r in a.spin_locks if r.address == lock]
    return r


def test_the_builder_queues_in_stack_handles_as_kxacquirequeuedspinlock_does():
    b = ScenarioBuilder(WIN10)
    b.module("Drv", "Drv.sys")
    sysp = b.process("System", 4)
    lock = b.spin_lock()
    holder = b.thread(sysp, 0x10, "Drv!A", state="Running", frames=["Drv!Poll+0x10", "Drv!Hold+0x20"] + SYSTEM_START)
    waiter = b.thread(sysp, 0x14, "Drv!B", state="Running", frames=QUEUED_SPIN + ["Drv!Take+0x30"] + SYSTEM_START)
    h1 = b.acquire_in_stack_queued_spin_lock(holder, lock, frame="Drv!Hold")
    # uncontended: the word is the handle; the entry names the lock with no bit (amd64 sets no owner bit)
    assert b._u64(lock) == h1 and b._u64(h1) == 0 and b._u64(h1 + 8) == lock
    h2 = b.acquire_in_stack_queued_spin_lock(waiter, lock, irql=2)
    # contended: the word is the new tail, linked behind the old one, LOCK_QUEUE_WAIT set
    assert b._u64(lock) == h2 and b._u64(h1) == h2 and b._u64(h2 + 8) == lock | LOCK_QUEUE_WAIT
    assert b._u8(h2 + 0x10) == 2                               # OldIrql
    assert b.frame_sp(waiter, "Drv!Take") + 0x20 == h2         # a local of the caller, on its stack
    w = decode_word(cached(b), lock)
    assert (w.kind, w.tail) == ("queued", h2)


def test_the_builder_sets_a_plain_lock_word_as_a_free_or_checked_build_does():
    b = ScenarioBuilder(WIN10)
    sysp = b.process("System", 4)
    t = b.thread(sysp, 0x10, "nt!KiIdleLoop")
    free, checked = b.spin_lock(), b.spin_lock()
    b.hold_spin_lock(free, t)
    b.hold_spin_lock(checked, t, checked=True)
    assert b._u64(free) == 1 and b._u64(checked) == t + 1
    assert decode_word(cached(b), free).kind == "plain"
    assert decode_word(cached(b), checked, {t}).thread == t
    with pytest.raises(ValueError):
        b.hold_spin_lock(free, t)


@pytest.mark.parametrize("build", BUILDS)
def test_queued_abba_is_a_cycle_with_recorded_holders(build):
    b = spinlock_queued_abba(build)
    a = analyze(cached(b))
    adapter, filt = b.symbols["NetFlt!gAdapterLock"], b.symbols["NetFlt!gFilterLock"]
    rx, oid = b.thread_started_at("NetFlt!ReceiveWorker"), b.thread_started_at("NetFlt!OidWorker")
    ra, rf = _report(a, adapter), _report(a, filt)
    assert ra.kind == rf.kind == "queued spin lock"
    assert [(s.cpu.index, s.thread, s.evidence) for s in ra.spinners] == [(2, oid, "queue-entry")]
    assert [(s.cpu.index, s.thread, s.evidence) for s in rf.spinners] == [(1, rx, "queue-entry")]
    assert ra.holder == (1, rx, "queue-head") and rf.holder == (2, oid, "queue-head")
    assert ra.candidates == rf.candidates == []
    (c,) = a.cycles
    assert set(c.threads) == {rx, oid} and set(c.locks) == {adapter, filt}
    assert [e.evidence for e in c.edges] == ["queue-entry", "queue-entry"]
    assert c.inferred == []                                    # the queues record both holders
    assert a.locks[adapter].owner_evidence == {} and a.locks[filt].owner_evidence == {}


@pytest.mark.parametrize("build", BUILDS)
def test_plain_spinners_and_a_candidate_holder(build):
    b = spinlock_plain_spinners(build)
    a = analyze(cached(b))
    lock = b.symbols["StorFlt!gRequestQueueLock"]
    reset = b.thread_started_at("StorFlt!ResetWorker")
    r = _report(a, lock)
    assert r.kind == "spin lock" and r.word.describe() == "held (0x1)"
    assert [(s.cpu.index, s.function, s.evidence) for s in r.spinners] == [
        (1, "nt!KxWaitForSpinLockAndAcquire", "spin-frame"), (2, "nt!KxWaitForSpinLockAndAcquire", "spin-frame")]
    # no owner recorded: CPU 3 (StorFlt at DISPATCH_LEVEL) is a candidate, never a holder; CPU 4
    # (StorFlt at PASSIVE_LEVEL) and CPU 5 (ndis's DPC) are not
    assert r.holder is None
    assert r.candidates == [(3, reset, "dispatch-same-module")]
    assert a.locks[lock].owner_evidence == {reset: "dispatch-same-module"}
    (ch,) = a.chains
    assert ch.root == reset and ch.root_evidence == "dispatch-same-module"
    assert sorted(p[0].thread for p in ch.paths) == sorted(s.thread for s in r.spinners)


def test_an_x86_style_owner_bit_names_the_holder():
    b = spinlock_queued_abba(WIN10)
    adapter = b.symbols["NetFlt!gAdapterLock"]
    rx = b.thread_started_at("NetFlt!ReceiveWorker")
    handle = b.frame_sp(rx, "NetFlt!AdapterIndicate") + 0x20
    b.u64(handle + 8, adapter | LOCK_QUEUE_OWNER)
    assert _report(analyze(cached(b)), adapter).holder == (1, rx, "queue-owner-bit")


def test_a_checked_build_lock_word_records_the_owner():
    b = spinlock_plain_spinners(WIN10)
    lock = b.symbols["StorFlt!gRequestQueueLock"]
    reset = b.thread_started_at("StorFlt!ResetWorker")
    b.u64(lock, reset + 1)
    a = analyze(cached(b))
    r = _report(a, lock)
    assert r.holder == (3, reset, "lock-word-thread") and r.candidates == []
    assert a.locks[lock].owner_evidence == {}


def test_numbered_queued_locks_in_the_prcb():
    """KeAcquireQueuedSpinLock on two processors: CPU 0 holds LockQueue[5], CPU 1's entry waits
    behind it (what !qlocks shows)."""
    b = ScenarioBuilder(WIN7)
    b.module("Drv", "Drv.sys")
    sysp = b.process("System", 4)
    t0 = b.thread(sysp, 0x10, "Drv!A", state="Running", frames=["Drv!Work+0x10"] + SYSTEM_START)
    t1 = b.thread(sysp, 0x14, "Drv!B", state="Running",
                  frames=["nt!KeAcquireQueuedSpinLock+0x40", "Drv!Other+0x10"] + SYSTEM_START)
    b.processor(0, current_thread=t0)
    b.processor(1, current_thread=t1)
    g = b.numbered_queued_lock(5, "nt!CcMasterSpinLock")
    e0 = b.acquire_queued_spin_lock(0, 5, g)
    e1 = b.acquire_queued_spin_lock(1, 5, g)
    assert b._u64(g) == e1 and b._u64(e0) == e1
    a = analyze(cached(b))
    r = _report(a, g)
    assert r.number == 5 and r.kind == "queued spin lock"
    assert [(s.cpu.index, s.evidence) for s in r.spinners] == [(1, "lock-queue")]
    assert r.holder == (0, t0, "queue-head")
    assert a.locks[g].owners == [(t0, "exclusive")]


@pytest.mark.parametrize("name", ["spinlock_queued_abba", "spinlock_plain_spinners"])
def test_json_and_text_say_what_is_recorded_and_what_is_inferred(name):
    code, out, err = run_cli("deadlock", "--target", mock(name), "--format", "json")
    assert code == 0 and err == ""
    d = json.loads(out)
    spins = d["spin_locks"]
    code, text, err = run_cli("deadlock", "--target", mock(name))
    assert code == 0 and "SPIN LOCKS" in text
    if name == "spinlock_queued_abba":
        assert [(s["lock_name"], s["lock_kind"], [x["cpu"] for x in s["spinners"]], s["holder"]["cpu"],
                 s["holder"]["evidence"], s["holder"]["recorded"]) for s in spins] == [
            ("NetFlt!gAdapterLock", "queued spin lock", [2], 1, "queue-head", True),
            ("NetFlt!gFilterLock", "queued spin lock", [1], 2, "queue-head", True)]
        assert d["cycles"][0]["inferred_owners"] == []
        assert text.count("[recorded: queue-head]") == 2 and "DEADLOCK 1" in text
    else:
        (s,) = spins
        assert (s["lock_name"], s["lock_kind"], s["lock_word"], s["holder"]) == (
            "StorFlt!gRequestQueueLock", "spin lock", "held (0x1)", None)
        assert [(x["cpu"], x["evidence"]) for x in s["spinners"]] == [(1, "spin-frame"), (2, "spin-frame")]
        assert [(c["cpu"], c["evidence"], c["recorded"]) for c in s["holder_candidates"]] == [
            (3, "dispatch-same-module", False)]
        lock = d["locks"][s["lock"]]
        assert [o["evidence"] for o in lock["owners"]] == ["dispatch-same-module"]
        assert d["chains"][0]["root_evidence"] == "dispatch-same-module"
        assert "[inferred: dispatch-same-module]" in text and "[owner inferred: dispatch-same-module]" in text
        assert "[recorded" not in text


def test_dpcs_on_the_spinning_0x133_target_still_blames_the_spinning_dpc():
    r = analyze_dpcs(cached(spinlock_plain_spinners(WIN10)))
    c = r.culprit
    assert (c.module, c.routine, c.cpu, c.spinning) == ("StorFlt.sys", "StorFlt!CompletionDpc", 1, True)
    assert 3 in c.holders and 1 not in c.holders
    assert "spinning on a spin lock in nt!KxWaitForSpinLockAndAcquire" in c.reason


def test_an_idle_processor_is_not_unwound():
    """Only busy processors (a thread other than the idle one, or a DPC running) are unwound:
    a spinner is at DISPATCH_LEVEL, and an unwind is a debugger round trip when live."""
    t = cached(spinlock_queued_abba(WIN10))
    analyze(t)
    # CPU 0 and CPU 3 idle: the two spinners only
    assert t.stats.stack_calls == 2


def test_an_unreadable_stack_is_a_warning_and_the_scan_goes_on():
    """CPU 2's stack pages are gone: CPU 1 still spins on the filter lock (its own queue entry
    says so); the filter lock's holder entry cannot be read, so its holder is not named -- and
    is not guessed."""
    b = spinlock_queued_abba(WIN10)
    oid = b.thread_started_at("NetFlt!OidWorker")
    rx = b.thread_started_at("NetFlt!ReceiveWorker")
    for _, sp in b.threads[oid].frames:
        b.mem.unmap(sp & ~0xfff)
    a = analyze(cached(b))
    filt = b.symbols["NetFlt!gFilterLock"]
    r = _report(a, filt)
    assert [(s.cpu.index, s.thread, s.evidence) for s in r.spinners] == [(1, rx, "queue-entry")]
    assert r.holder is None and r.candidates == []
    assert "on no processor's stack" in a.locks[filt].note
    assert any(d.kind == "unreadable" for d in a.diagnostics)
    assert a.cycles == []


def test_an_unreadable_processor_block_is_a_warning_and_the_others_are_read():
    b = spinlock_queued_abba(WIN10)
    prcb = b._prcb(3)
    b.mem.unmap(prcb)
    a = analyze(cached(b))
    assert len(a.cycles) == 1
    assert any("CPU 3" in d.message for d in a.diagnostics)
