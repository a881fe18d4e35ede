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
    # no owner recorded: CPU 3 and CPU 4 both run StorFlt threads at an IRQL nothing recorded (only
    # CPU 1, which bug checked, saved one), so both are only same-module-thread candidates, never
    # holders; CPU 5 (ndis's DPC) is none
    assert r.holder is None
    assert [(c, ev) for c, _, ev in r.candidates] == [(3, "same-module-thread"), (4, "same-module-thread")]
    assert r.candidates[0][1] == reset
    assert a.locks[lock].owner_evidence == {reset: "same-module-thread"}
    (ch,) = a.chains
    assert ch.root == reset and ch.root_evidence == "same-module-thread"
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
            (3, "same-module-thread", False), (4, "same-module-thread", False)]
        lock = d["locks"][s["lock"]]
        assert [o["evidence"] for o in lock["owners"]] == ["same-module-thread"]
        assert d["chains"][0]["root_evidence"] == "same-module-thread"
        assert "[inferred: same-module-thread]" in text and "[owner inferred: same-module-thread]" in text
        assert "same-module-thread: in a thread, at an IRQL nothing recorded" in text
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


# -- who can be a candidate holder of a plain spin lock: the IRQL only the bug-checking processor saved

def _stale_irql(b, cpu, irql):
    """A stale KPRCB.DebuggerSavedIRQL on a processor that did not bug check (the builder's raw
    put: what an earlier break or bug check left; no kernel routine writes it now)."""
    b.put("_KPRCB", b._prcb(cpu), DebuggerSavedIRQL=irql)


def _plain_candidates(b):
    r = _report(analyze(cached(b)), b.symbols["StorFlt!gRequestQueueLock"])
    return [(c, ev) for c, _, ev in r.candidates]


def test_a_stale_saved_irql_does_not_make_a_thread_a_dispatch_level_candidate():
    b = spinlock_plain_spinners(WIN10)
    _stale_irql(b, 3, 2)
    _stale_irql(b, 4, 2)
    assert _plain_candidates(b) == [(3, "same-module-thread"), (4, "same-module-thread")]


def test_a_dpc_of_the_module_is_a_dispatch_level_candidate_ranked_first():
    b = spinlock_plain_spinners(WIN10)
    idle = b.threads[b.thread_started_at("nt!KiIdleLoop")].process
    t = b.thread(idle, 0, "nt!KiIdleLoop", state="Running",
                 frames=["StorFlt!CheckTimeouts+0x20", "StorFlt!TimerDpc+0x31", "nt!KiExecuteAllDpcs+0x2e7",
                         "nt!KiRetireDpcList+0x1f4", "nt!KiIdleLoop+0x9e"])
    b.processor(6, current_thread=t, idle_thread=t)
    b.running_dpc(6, "StorFlt!TimerDpc")
    assert _plain_candidates(b) == [(6, "dispatch-same-module"), (3, "same-module-thread"),
                                    (4, "same-module-thread")]


CLOCK_INTERRUPT = ["nt!KeAccumulateTicks+0x1c8b0", "nt!KeClockInterruptNotify+0x98f", "hal!HalpTimerClockInterrupt+0xf7",
                   "nt!KiCallInterruptServiceRoutine+0xa5", "nt!KiInterruptSubDispatchNoLockNoEtw+0xfa",
                   "nt!KiInterruptDispatchNoLockNoEtw+0x37"]


def _bugchecking_holder(saved, under=()):
    """CPU 0 spins on Drv's plain lock; CPU 1 runs Drv's thread code and bug checks there
    (`under`: frames between KeBugCheckEx and that code), saving IRQL `saved`."""
    b = ScenarioBuilder(WIN10)
    b.module("Drv", "Drv.sys")
    sysp = b.process("System", 4)
    lock = b.spin_lock()
    spinner = b.thread(sysp, 0x14, "Drv!B", state="Running",
                       frames=["nt!KxWaitForSpinLockAndAcquire+0x2c", "nt!KeAcquireSpinLockRaiseToDpc+0x8f",
                               "Drv!Take+0x30"] + SYSTEM_START)
    holder = b.thread(sysp, 0x10, "Drv!A", state="Running",
                      frames=["nt!KeBugCheckEx"] + list(under) + ["Drv!Poll+0x10", "Drv!Hold+0x20"] + SYSTEM_START)
    b.processor(0, current_thread=spinner)
    b.processor(1, current_thread=holder)
    b.hold_spin_lock(lock, holder)
    b.spin_on_spin_lock(spinner, lock)
    b.bugcheck(0xD1, 0x10, saved, 0, b.code("Drv!Poll+0x10"), cpu=1, irql=saved)
    r = _report(analyze(cached(b)), lock)
    return [(c, ev) for c, _, ev in r.candidates]


def test_the_bug_checking_processor_at_dispatch_level_is_a_dispatch_level_candidate():
    assert _bugchecking_holder(2) == [(1, "dispatch-same-module")]
    assert _bugchecking_holder(0) == [(1, "same-module-thread")]


def test_an_irql_saved_by_an_interrupt_says_nothing_of_the_code_it_interrupted():
    # bug checked from the clock interrupt: CLOCK_LEVEL is the interrupt's IRQL, not Drv's
    assert _bugchecking_holder(13, CLOCK_INTERRUPT) == [(1, "same-module-thread")]
