"""The wait-for graph per lock kind and per build, from memory laid out by the builder.
Every expectation below is stated here from the scenario's meaning, never read back from
the builder."""
import pytest

from pykd_ext.analysis.waitgraph import analyze, format_duration
from pykd_ext.mock.builder import ScenarioBuilder

from conftest import BUILDS, WIN7, WIN81, WIN10, WIN11, cached

TOP = ["nt!KiSwapContext+0x76", "nt!KiSwapThread+0x3a7", "nt!KiCommitThreadWait+0x14f",
       "nt!KeWaitForSingleObject+0x233"]
ACQ_X = ["nt!ExpWaitForResource+0x6d", "nt!ExAcquireResourceExclusiveLite+0x1a6"]
ACQ_S = ["nt!ExpWaitForResource+0x6d", "nt!ExAcquireResourceSharedLite+0x2b1"]
START = ["nt!PspSystemThreadStartup+0x55", "nt!KiStartSystemThread+0x28"]


def base(build, module="Drv"):
    b = ScenarioBuilder(build)
    b.module(module, module + ".sys")
    return b, b.process("System", 4)


def thr(b, proc, tid, func, extra=(), ticks=100, module="Drv"):
    return b.thread(proc, tid, "%s!%s" % (module, func), waited_ticks=ticks,
                    frames=TOP + list(extra) + ["%s!%s+0x20" % (module, func)] + START)


def eresource_cycle(build, ticks=100):
    """Two threads, each holding one ERESOURCE and waiting for the other's."""
    b, sysp = base(build)
    r1, r2 = b.eresource(), b.eresource()
    t1 = thr(b, sysp, 0x10, "A", ACQ_X, ticks=ticks)
    t2 = thr(b, sysp, 0x14, "B", ACQ_X)
    b.acquire_resource(r1, t1)
    b.acquire_resource(r2, t2)
    b.wait_resource(t1, r2)
    b.wait_resource(t2, r1)
    return b, (t1, t2), (r1, r2)


def cycle_sets(a):
    return [(set(c.threads), set(c.locks)) for c in a.cycles]


@pytest.mark.parametrize("build", BUILDS)
def test_eresource_cycle_on_every_build(build):
    b, (t1, t2), (r1, r2) = eresource_cycle(build)
    a = analyze(cached(b))
    assert cycle_sets(a) == [({t1, t2}, {r1, r2})]
    evidence = {e.evidence for e in a.cycles[0].edges}
    # 7/8.1: the resource's own KEVENT; 10/11: the _KWAIT_CHAIN_ENTRY list names the waiter
    assert evidence == ({"wait-block"} if build in (WIN7, WIN81) else {"wait-chain"})
    assert {(e.thread, e.lock, e.holder) for e in a.cycles[0].edges} == {(t1, r2, t2), (t2, r1, t1)}
    assert not a.chains


@pytest.mark.parametrize("build", [WIN7, WIN11])
def test_mutant_cycle(build):
    b, sysp = base(build)
    t1 = thr(b, sysp, 0x10, "A")
    t2 = thr(b, sysp, 0x14, "B")
    m1, m2 = b.mutant(owner=t1), b.mutant(owner=t2)
    b.wait_on(t1, [m2], "UserRequest")
    b.wait_on(t2, [m1], "UserRequest")
    a = analyze(cached(b))
    assert cycle_sets(a) == [({t1, t2}, {m1, m2})]
    assert {a.locks[m].kind for m in (m1, m2)} == {"mutant"}


def test_fast_mutex_chain_to_a_running_owner():
    b, sysp = base(WIN81)
    owner = b.thread(sysp, 0x10, "Drv!Spin", state="Running", frames=["Drv!Spin+0x10"] + START)
    fm = b.fast_mutex(owner=owner)
    w = thr(b, sysp, 0x14, "Waiter", ["nt!ExAcquireFastMutex+0x40"])
    b.wait_fast_mutex(w, fm)
    a = analyze(cached(b))
    assert not a.cycles
    assert [(c.root, c.root_kind) for c in a.chains] == [(owner, "thread")]
    assert a.chains[0].reason.startswith("running")
    assert a.locks[fm].kind == "fast mutex"
    assert a.threads[owner].driver == "Drv.sys"


def test_guarded_mutex_self_deadlock_on_windows_7():
    b, sysp = base(WIN7)
    t = thr(b, sysp, 0x10, "Again", ["nt!KeAcquireGuardedMutex+0x40"])
    gm = b.alloc(b.size("_KGUARDED_MUTEX"))
    b.put("_KGUARDED_MUTEX", gm, Count=0, Owner=t, Gate__Header__Type=b.enum("_KOBJECTS", "GateObject"))
    b.wait_on(t, [gm + b.off("_KGUARDED_MUTEX", "Gate")], "WrGuardedMutex")
    a = analyze(cached(b))
    assert cycle_sets(a) == [({t}, {gm})]
    assert a.locks[gm].kind == "guarded mutex"


@pytest.mark.parametrize("build", [WIN81, WIN10])
def test_shared_owners_from_the_owner_table_are_all_roots(build):
    b, sysp = base(build)
    r = b.eresource()
    readers = [thr(b, sysp, 0x20 + 4 * i, "Reader%d" % i) for i in range(3)]
    for t in readers:
        b.acquire_resource(r, t, exclusive=False)
        b.wait_on(t, [b.event()])
    writer = thr(b, sysp, 0x40, "Writer", ACQ_X)
    b.wait_resource(writer, r)
    a = analyze(cached(b))
    assert {o for o, m in a.locks[r].owners} == set(readers)
    assert {m for o, m in a.locks[r].owners} == {"shared"}
    assert sorted(c.root for c in a.chains) == sorted(readers)
    assert all(c.paths[0][0].thread == writer for c in a.chains)


@pytest.mark.parametrize("build", [WIN81, WIN10])
def test_shared_to_exclusive_upgrade_is_a_self_deadlock(build):
    b, sysp = base(build)
    r = b.eresource()
    t = thr(b, sysp, 0x10, "Upgrade", ACQ_X)
    b.acquire_resource(r, t, exclusive=False)
    b.wait_resource(t, r, exclusive=True)
    a = analyze(cached(b))
    assert cycle_sets(a) == [({t}, {r})]


def test_owner_pointer_is_a_root_lock_not_a_thread():
    b, sysp = base(WIN81)
    r = b.eresource()
    b.acquire_resource(r, 0xfffffa8000abc003)         # ExSetResourceOwnerPointer value
    w = thr(b, sysp, 0x10, "W", ACQ_X)
    b.wait_resource(w, r)
    a = analyze(cached(b))
    assert [(c.root, c.root_kind) for c in a.chains] == [(r, "lock")]
    assert "owner pointer 0xfffffa8000abc003" in a.chains[0].reason


def test_owner_not_in_any_thread_list():
    b, sysp = base(WIN10)
    r = b.eresource()
    ghost = 0xfffffa8000777000
    b.acquire_resource(r, ghost)
    w = thr(b, sysp, 0x10, "W", ACQ_X)
    b.wait_resource(w, r)
    a = analyze(cached(b))
    assert a.chains[0].root == ghost
    assert "not in any process's thread list" in a.chains[0].reason


@pytest.mark.parametrize("state, reason, words", [
    ("Terminated", None, "terminated"),
    ("Waiting", "DelayExecution", "sleeping (KeDelayExecutionThread, DelayExecution) while holding the lock"),
])
@pytest.mark.parametrize("build", BUILDS)
def test_root_blocker_states(state, reason, words, build):
    b, sysp = base(build)
    r = b.eresource(name="Drv!gLock")
    owner = b.thread(sysp, 0x10, "Drv!Owner", state=state, wait_reason=reason or "Executive", waited_ticks=640,
                     frames=["nt!KiSwapContext+0x76", "nt!KeDelayExecutionThread+0x122", "Drv!Owner+0x10"] + START)
    if state == "Waiting":
        b.sleep(owner)
    b.acquire_resource(r, owner)
    w = thr(b, sysp, 0x14, "W", ACQ_X)
    b.wait_resource(w, r)
    a = analyze(cached(b))
    assert a.chains[0].root == owner
    assert words in a.chains[0].reason
    assert a.locks[r].name == "Drv!gLock"
    assert not a.diagnostics          # an inactive sleep block (8+) is no unreadable object


def test_stack_scan_skips_the_resource_the_waiter_already_holds():
    """On 19041 the held resource's address is nearer the wait frame than the wanted one.
    The waiter chain is cut (its pointer unreadable), so the stack scan is what is left."""
    b, sysp = base(WIN10)
    held, wanted = b.eresource(), b.eresource()
    other = thr(b, sysp, 0x20, "Other")
    b.acquire_resource(wanted, other)
    b.wait_on(other, [b.event()])
    t = thr(b, sysp, 0x10, "T", ACQ_X)
    b.acquire_resource(held, t)
    b.wait_resource(t, wanted)
    b.stack_word(t, "nt!ExpWaitForResource", 0x8, held)     # below the wanted one
    b.put("_ERESOURCE", wanted, ExclusiveWaiters=0xfffff88000001230)     # unmapped
    a = analyze(cached(b))
    edge = [e for e in a.edges if e.thread == t][0]
    assert (edge.lock, edge.evidence) == (wanted, "stack-scan")
    assert any("waiter chain" in d.message for d in a.diagnostics)


@pytest.mark.parametrize("build", BUILDS)
def test_wait_times_in_ticks_and_seconds(build):
    """An event wait's WaitTime is when it began (seed 003's !thread: 38463 ticks, 10 min)."""
    b, sysp = base(build)
    r = b.eresource()
    t = thr(b, sysp, 0x10, "T", ticks=38463)
    b.acquire_resource(r, t)
    b.wait_on(t, [b.event()])
    w = thr(b, sysp, 0x14, "W", ACQ_X)
    b.wait_resource(w, r)
    a = analyze(cached(b))
    assert a.threads[t].ticks == 38463 and not a.threads[t].wait_slice
    assert format_duration(a.threads[t].seconds) == "0:00:10:00.984"
    assert format_duration(600.026) == "0:00:10:00.026"


@pytest.mark.parametrize("build", BUILDS)
def test_a_resource_waiter_shows_only_its_current_wait_slice(build):
    """ExpWaitForResource waits 0.5 s, then re-waits every 4 s, and each wait resets
    KTHREAD.WaitTime: 10 minutes of waiting leave 0.484 s (31 ticks) since the last re-wait.
    The analysis says it is a slice, never '10 minutes' nor a confident '0.48 s'."""
    b, (t1, _), _ = eresource_cycle(build, ticks=38463)
    a = analyze(cached(b))
    f = a.threads[t1]
    assert f.ticks == 31 and f.wait_slice
    assert f.seconds <= 4.0


def test_event_wait_is_not_a_lock_edge():
    b, sysp = base(WIN10)
    t = thr(b, sysp, 0x10, "Idle")
    b.wait_on(t, [b.event()])
    a = analyze(cached(b))
    assert not a.edges and not a.cycles and not a.chains


def eresource_abba(build, process="System", tids=(0x10, 0x14)):
    """Two threads of Drv.sys in `process` (pid 4), each holding one ERESOURCE and waiting for
    the other's: (builder, (thread1, thread2), (lock1, lock2))."""
    b = ScenarioBuilder(build)
    b.module("Drv", "Drv.sys")
    p = b.process(process, 4)
    t1 = b.thread(p, tids[0], "Drv!A", frames=TOP + ACQ_X + ["Drv!A+0x10"] + START)
    t2 = b.thread(p, tids[1], "Drv!B", frames=TOP + ACQ_X + ["Drv!B+0x10"] + START)
    r1, r2 = b.eresource(name="Drv!gOne"), b.eresource(name="Drv!gTwo")
    b.acquire_resource(r1, t1)
    b.acquire_resource(r2, t2)
    b.wait_resource(t1, r2)
    b.wait_resource(t2, r1)
    return b, (t1, t2), (r1, r2)
