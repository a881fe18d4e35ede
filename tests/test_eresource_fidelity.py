"""The kernel's own ERESOURCE and wait mechanics, laid out by the builder's kernel routines on
every build they apply to, and what the analysis must read from them (
pykd_ext/SEMANTICS.md).  Each test states the scenario's meaning and asserts facts; each failed on
the reading before this one (commit 03cc0a3)."""
import json

import pytest

from pykd_ext.analysis.waitgraph import analyze
from pykd_ext.kernel.diag import Diagnostics
from pykd_ext.kernel.resources import decode_resource
from pykd_ext.mock.builder import ScenarioBuilder

from conftest import BUILDS, WIN10, WIN11, WIN7, cached, run_cli
from test_waitgraph import ACQ_S, ACQ_X, START, TOP
from test_waitgraph import base as waitgraph_base, thr as waitgraph_thr


def base(build):
    return waitgraph_base(build, module="Fs")


def thr(b, proc, tid, func, extra=(), ticks=100):
    return waitgraph_thr(b, proc, tid, func, extra, ticks, module="Fs")


def shared_owner_with_queued_waiters(build):
    """A owns the resource shared and waits on an event; B asks for it exclusive and queues;
    C then asks shared and must wait behind B: ExAcquireResourceSharedLite writes C into an
    owner entry before it blocks."""
    b, sysp = base(build)
    r = b.eresource(name="Fs!gVcbResource")
    owner = thr(b, sysp, 0x10, "Owner", ticks=2000)
    b.acquire_resource(r, owner, exclusive=False)
    b.wait_on(owner, [b.event()], "Executive")
    x = thr(b, sysp, 0x14, "Writer", ACQ_X)
    b.wait_resource(x, r, exclusive=True)
    s = thr(b, sysp, 0x18, "Reader", ACQ_S)
    b.wait_resource(s, r, exclusive=False)
    return b, r, owner, x, s


@pytest.mark.parametrize("build", BUILDS)
def test_a_queued_shared_waiter_in_an_owner_entry_is_no_owner(build):
    b, r, owner, x, s = shared_owner_with_queued_waiters(build)
    a = analyze(cached(b))
    assert a.cycles == []
    assert [(c.root, sorted({p[0].thread for p in c.paths})) for c in a.chains] == [(owner, sorted([x, s]))]
    lk = a.locks[r]
    assert lk.owners == [(owner, "shared")]
    assert lk.queued == [s]
    assert {(e.thread, e.mode) for e in a.edges} == {(x, "exclusive"), (s, "shared")}
    assert "waiting (Executive) on NotificationEvent" in a.chains[0].reason


@pytest.mark.parametrize("build", BUILDS)
def test_deadlock_command_names_the_real_owner_as_root(build, tmp_path):
    b, r, owner, x, s = shared_owner_with_queued_waiters(build)
    p = str(tmp_path / "t.json.gz")
    b.save(p)
    code, out, err = run_cli("deadlock", "--target", p, "--no-color")
    assert code == 0 and err == ""
    assert "DEADLOCK 1" not in out and "WAIT CHAIN 1: 2 waiters behind one root blocker" in out
    assert "root  thread 0x%x" % owner in out
    d = json.loads(run_cli("deadlock", "--target", p, "--format", "json")[1])
    assert d["locks"]["0x%x" % r]["waiters_in_owner_entries"] == ["0x%x" % s]
    assert d["locks"]["0x%x" % r]["owners"] == [{"owner": "0x%x" % owner, "mode": "shared", "owner_pointer": None, "evidence": "recorded"}]


@pytest.mark.parametrize("build", BUILDS)
def test_a_shared_owner_asking_exclusive_is_still_a_self_deadlock(build):
    """Its owner entry is a real ownership (it waits exclusive, not shared): a true deadlock."""
    b, sysp = base(build)
    r = b.eresource()
    t = thr(b, sysp, 0x10, "Upgrade", ACQ_X)
    b.acquire_resource(r, t, exclusive=False)
    b.wait_resource(t, r, exclusive=True)
    a = analyze(cached(b))
    assert [(c.threads, c.locks) for c in a.cycles] == [([t], [r])]


@pytest.mark.parametrize("build", BUILDS)
def test_more_shared_owners_than_the_first_owner_table_holds(build):
    """ExpExpandResourceOwnerTable starts with 3 entries and grows by 4: six shared owners
    live in OwnerEntry and a grown table; all are owners, an exclusive waiter behind them."""
    b, sysp = base(build)
    r = b.eresource()
    owners = []
    for i in range(6):
        t = thr(b, sysp, 0x10 + 4 * i, "Owner%d" % i)
        b.acquire_resource(r, t, exclusive=False)
        b.wait_on(t, [b.event()], "Executive")
        owners.append(t)
    w = thr(b, sysp, 0x40, "Writer", ACQ_X)
    b.wait_resource(w, r)
    a = analyze(cached(b))
    assert sorted(o for o, _ in a.locks[r].owners) == sorted(owners)
    assert sorted(c.root for c in a.chains) == sorted(owners)
    assert not a.diagnostics


@pytest.mark.parametrize("build", [WIN10, WIN11])
def test_the_waiter_chain_names_every_waiter_exactly(build):
    """10+: several exclusive and shared waiters on one exclusively owned resource, each
    blocked on the event of its own _KWAIT_CHAIN_ENTRY; the counts are kept."""
    b, sysp = base(build)
    r = b.eresource()
    owner = thr(b, sysp, 0x10, "Owner")
    b.acquire_resource(r, owner)
    b.sleep(owner)
    xs = [thr(b, sysp, 0x20 + 4 * i, "X%d" % i, ACQ_X) for i in range(2)]
    ss = [thr(b, sysp, 0x40 + 4 * i, "S%d" % i, ACQ_S) for i in range(3)]
    for t in xs:
        b.wait_resource(t, r, exclusive=True)
    for t in ss:
        b.wait_resource(t, r, exclusive=False)
    a = analyze(cached(b))
    got = {(e.thread, e.lock, e.mode, e.evidence) for e in a.edges}
    assert got == {(t, r, "exclusive", "wait-chain") for t in xs} | {(t, r, "shared", "wait-chain") for t in ss}
    assert a.locks[r].owners == [(owner, "exclusive")]
    assert [c.root for c in a.chains] == [owner]
    assert not a.diagnostics
    res = decode_resource(cached(b), r, Diagnostics())
    assert [t for t, _ in res.chain["exclusive"]] == xs and [t for t, _ in res.chain["shared"]] == ss
    assert (res.n_exclusive_waiters, res.n_shared_waiters) == (2, 3)


@pytest.mark.parametrize("build", [WIN10, WIN11])
def test_a_chain_that_disagrees_with_its_count_is_said(build):
    b, sysp = base(build)
    r = b.eresource()
    owner = thr(b, sysp, 0x10, "Owner")
    b.acquire_resource(r, owner)
    b.sleep(owner)
    w = thr(b, sysp, 0x20, "W", ACQ_X)
    b.wait_resource(w, r)
    b.put("_ERESOURCE", r, NumberOfExclusiveWaiters=3)
    a = analyze(cached(b))
    assert [(e.thread, e.evidence) for e in a.edges] == [(w, "wait-chain")]
    assert any(d.kind == "inconsistent" and "lists 1 waiter(s), NumberOfExclusiveWaiters says 3" in d.message
               for d in a.diagnostics)


@pytest.mark.parametrize("build", BUILDS)
def test_an_owner_pointer_that_is_a_thread_names_that_thread(build):
    """ExSetResourceOwnerPointerEx(..., FLAG_OWNER_POINTER_IS_THREAD): value & ~3 is the owner."""
    b, sysp = base(build)
    r = b.eresource()
    owner = thr(b, sysp, 0x10, "Owner")
    b.wait_on(owner, [b.event()], "Executive")
    b.acquire_resource(r, owner | 3)
    w = thr(b, sysp, 0x14, "W", ACQ_X)
    b.wait_resource(w, r)
    a = analyze(cached(b))
    assert [c.root for c in a.chains] == [owner]
    assert a.locks[r].owner_pointers == {owner: owner | 3}
    assert a.threads[owner].holds == [(r, "exclusive")]


@pytest.mark.parametrize("build", [WIN10, WIN11])
def test_a_fast_resource_has_no_phantom_owner(build):
    b, sysp = base(build)
    r = b.fast_eresource()
    b.put("_ERESOURCE", r, ActiveCount=1)
    res = decode_resource(cached(b), r, Diagnostics())
    assert res.fast and res.owners == []


@pytest.mark.parametrize("build", BUILDS)
def test_a_wait_any_cycle_is_conditional(build):
    """T1 holds M1 and waits for M2 *or* its cancel event; T2 holds M2 and waits for M1:
    a deadlock only while nobody signals the cancel event."""
    b, sysp = base(build)
    t1 = thr(b, sysp, 0x10, "T1")
    t2 = thr(b, sysp, 0x14, "T2")
    m1, m2, cancel = b.mutant(owner=t1), b.mutant(owner=t2), b.event()
    b.wait_on(t1, [m2, cancel], "Executive", wait_type="any")
    b.wait_on(t2, [m1], "Executive")
    a = analyze(cached(b))
    assert [sorted(c.threads) for c in a.cycles] == [sorted([t1, t2])]
    assert a.cycles[0].conditional == [cancel]
    b2, sysp2 = base(build)
    u1, u2 = thr(b2, sysp2, 0x10, "T1"), thr(b2, sysp2, 0x14, "T2")
    n1, n2, ev = b2.mutant(owner=u1), b2.mutant(owner=u2), b2.event()
    b2.wait_on(u1, [n2, ev], "Executive", wait_type="all")      # WaitAll: both, a hard edge
    b2.wait_on(u2, [n1], "Executive")
    assert analyze(cached(b2)).cycles[0].conditional == []


@pytest.mark.parametrize("build", BUILDS)
def test_a_synchronization_event_is_no_fast_mutex_without_its_wait_reason(build):
    """A driver's record {..., KTHREAD *Worker at +0x8, KEVENT at +0x18}: a thread waiting
    (Executive) on that SynchronizationEvent waits on an event, not on a fast mutex."""
    b, sysp = base(build)
    other = thr(b, sysp, 0x10, "Other")
    b.wait_on(other, [b.event()], "Executive")
    rec = b.alloc(0x40)
    b.u64(rec + 0x8, other)
    ev = b.event(notification=False, address=rec + b.off("_FAST_MUTEX", "Event"))
    t = thr(b, sysp, 0x14, "T")
    b.wait_on(t, [ev], "Executive")
    a = analyze(cached(b))
    assert a.edges == [] and a.chains == []


@pytest.mark.parametrize("build", [WIN7, WIN10])
def test_any_acquire_routine_on_the_stack(build):
    """A waiter inside ExEnterCriticalRegionAndAcquireResourceExclusive with no
    ExAcquireResourceExclusiveLite frame: the builder keeps the resource in that frame, and
    with the waiter structures unreadable the stack scan still finds the edge."""
    b, sysp = base(build)
    r = b.eresource()
    owner = thr(b, sysp, 0x10, "Owner")
    b.acquire_resource(r, owner)
    b.wait_on(owner, [b.event()], "Executive")
    w = thr(b, sysp, 0x14, "W", ["nt!ExpWaitForResource+0x6d", "nt!ExEnterCriticalRegionAndAcquireResourceExclusive+0x40"])
    b.wait_resource(w, r)
    b.put("_ERESOURCE", r, ExclusiveWaiters=0xfffff88000001230, NumberOfExclusiveWaiters=1)
    b.put("_KTHREAD", w, WaitBlockList=0xfffff88000001230)
    a = analyze(cached(b))
    assert [(e.thread, e.lock, e.evidence) for e in a.edges] == [(w, r, "stack-scan")]


@pytest.mark.parametrize("build", [WIN7, WIN11])
def test_chosen_addresses_and_frames_in_no_module(build):
    """Published sessions give addresses: a thread and a KDPC where the session saw them, and
    a frame in an unloaded driver (a bare address no module covers)."""
    b, sysp = base(build)
    t = b.thread(sysp, 0x10, "Fs!Worker", address=0xfffffa8004b6d040,
                 frames=TOP + ["0xfffff88001234567", "Fs!Worker+0x20"] + START)
    b.wait_on(t, [b.event()], "Executive")
    b.processor(0)
    k = b.queue_dpc(0, "Fs!Dpc", address=0xfffffa8004b6e000)
    target = cached(b)
    assert t in b.threads and k == 0xfffffa8004b6e000
    a = analyze(target)
    assert a.counts["threads"] == 1
    frames = [f for f in target.stack(t)]
    assert any(f.ip == 0xfffff88001234567 for f in frames)
    assert target.module_at(0xfffff88001234567) is None


def _with_chain_shape(target, fields):
    """The same memory read with another _KWAIT_CHAIN_ENTRY layout (the shapes public type
    dumps show differ by build), the shipped layout set left untouched."""
    from pykd_ext.target.layouts import LayoutSet
    ls = target.layouts()
    raw = dict(ls._raw)
    raw["_KWAIT_CHAIN_ENTRY"] = {"kind": "struct", "size": 0x30, "fields": fields}
    target._layouts = LayoutSet(ls.build, ls.pointer_size, raw, ls.enums, ls.base_types, ls.aliases)
    return target


@pytest.mark.parametrize("build", [WIN10, WIN11])
def test_a_chain_record_without_thread_is_matched_by_its_event(build):
    """The 0x28-byte shape some public type dumps give (ListEntry, then Event at +0x10, no
    Thread): the builder lays the records out in that shape and the analysis, reading the same
    layout, matches each record to its waiter by the event the waiter's wait block names."""
    from pykd_ext.target.cache import CachedTarget
    from pykd_ext.target.layouts import LayoutSet
    b, sysp = base(build)
    ls = b.layouts
    raw = dict(ls._raw)
    raw["_KWAIT_CHAIN_ENTRY"] = {"kind": "struct", "size": 0x28, "fields": {
        "ListEntry": {"offset": 0, "size": 16, "type": "_LIST_ENTRY"},
        "Event": {"offset": 0x10, "size": 24, "type": "_KEVENT"}}}
    b.layouts = LayoutSet(ls.build, ls.pointer_size, raw, ls.enums, ls.base_types, ls.aliases)
    r = b.eresource()
    owner = thr(b, sysp, 0x10, "Owner")
    b.acquire_resource(r, owner)
    b.sleep(owner)
    ws = [thr(b, sysp, 0x14 + 4 * i, "W%d" % i, ACQ_X) for i in range(2)]
    for w in ws:
        b.wait_resource(w, r)
    t = b.target()
    t._layouts = b.layouts
    a = analyze(CachedTarget(t))
    assert sorted((e.thread, e.lock, e.evidence) for e in a.edges) == [(w, r, "wait-chain") for w in ws]
    assert [c.root for c in a.chains] == [owner] and not a.diagnostics


@pytest.mark.parametrize("build", [WIN10, WIN11])
def test_a_chain_linked_singly_is_not_walked_and_the_stack_scan_remains(build):
    from pykd_ext.target.cache import CachedTarget
    b, sysp = base(build)
    r = b.eresource()
    owner = thr(b, sysp, 0x10, "Owner")
    b.acquire_resource(r, owner)
    b.sleep(owner)
    w = thr(b, sysp, 0x14, "W", ACQ_X)
    b.wait_resource(w, r)
    t = _with_chain_shape(b.target(), {"ListEntry": {"offset": 0, "size": 8, "type": "_SINGLE_LIST_ENTRY"},
                                       "Event": {"offset": 0x8, "size": 24, "type": "_KEVENT"}})
    a = analyze(CachedTarget(t))
    assert [(e.thread, e.lock, e.evidence) for e in a.edges] == [(w, r, "stack-scan")]
    assert any("no LIST_ENTRY link" in d.message for d in a.diagnostics)


def test_a_recording_without_the_wait_block_state_enum_still_reads():
    """Recordings made before the wait-block states were read carry no _KWAIT_BLOCK_STATE
    enum; a Windows 7 one must still give its cycle, not 'unusable target'."""
    from pykd_ext.target.cache import CachedTarget
    from pykd_ext.target.layouts import LayoutSet
    from test_waitgraph import eresource_cycle
    b, (t1, t2), (r1, r2) = eresource_cycle(WIN7)
    t = b.target()
    ls = t.layouts()
    enums = {k: v for k, v in ls.enums.items() if k != "_KWAIT_BLOCK_STATE"}
    t._layouts = LayoutSet(ls.build, ls.pointer_size, ls._raw, enums, ls.base_types, ls.aliases)
    a = analyze(CachedTarget(t))
    assert [set(c.threads) for c in a.cycles] == [{t1, t2}]
