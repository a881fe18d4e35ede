"""Driver Verifier's deadlock database (issue 15, point 6): read from the target's own types
when its symbols have them (here: the x64 layouts public PDB-derived headers give for 10 20H1,
ntdiff/headers Win10_20H1_18885/x64 _VI_DEADLOCK_*), said to be unavailable otherwise."""
import json

from pykd_ext.analysis.waitgraph import analyze
from pykd_ext.mock.builder import ScenarioBuilder
from pykd_ext.target.cache import CachedTarget
from pykd_ext.target.layouts import LayoutSet

from conftest import WIN10, cached

VERIFIER_TYPES = {
    "_VI_DEADLOCK_GLOBALS": {"kind": "struct", "size": 0x8170, "fields": {
        "Instigator": {"offset": 0x8058, "size": 8, "type": "ptr:void"},
        "NumberOfParticipants": {"offset": 0x8060, "size": 4, "type": "unsigned long"},
        "Participant": {"offset": 0x8068, "size": 0x100, "type": "ptr:_VI_DEADLOCK_NODE[32]"}}},
    "_VI_DEADLOCK_NODE": {"kind": "struct", "size": 0xd0, "fields": {
        "Root": {"offset": 0x38, "size": 8, "type": "ptr:_VI_DEADLOCK_RESOURCE"},
        "ThreadEntry": {"offset": 0x40, "size": 8, "type": "ptr:_VI_DEADLOCK_THREAD"},
        "StackTrace": {"offset": 0x50, "size": 0x40, "type": "ptr:void[8]"}}},
    "_VI_DEADLOCK_RESOURCE": {"kind": "struct", "size": 0xf8, "fields": {
        "Type": {"offset": 0, "size": 4, "type": "enum:_VI_DEADLOCK_RESOURCE_TYPE"},
        "ResourceAddress": {"offset": 8, "size": 8, "type": "ptr:void"}}},
    "_VI_DEADLOCK_THREAD": {"kind": "struct", "size": 0x38, "fields": {
        "Thread": {"offset": 0, "size": 8, "type": "ptr:_KTHREAD"}}},
}
TYPES_ENUM = {"base": "int", "size": 4, "constants": {
    "VfDeadlockUnknown": 0, "VfDeadlockMutex": 1, "VfDeadlockMutexAbandoned": 2, "VfDeadlockFastMutex": 3,
    "VfDeadlockFastMutexUnsafe": 4, "VfDeadlockSpinLock": 5, "VfDeadlockInStackQueuedSpinLock": 6,
    "VfDeadlockUnusedSpinLock": 7, "VfDeadlockEresource": 8}}


def _with_verifier_types(ls):
    raw = dict(ls._raw)
    raw.update(VERIFIER_TYPES)
    enums = dict(ls.enums)
    enums["_VI_DEADLOCK_RESOURCE_TYPE"] = TYPES_ENUM
    return LayoutSet(ls.build, ls.pointer_size, raw, enums, ls.base_types, ls.aliases)


def _verifier_db(b, entries, instigator):
    """Verifier's deadlock database as the target's symbols type it: one node per (thread,
    lock, _VI_DEADLOCK_RESOURCE_TYPE value, acquire site), in ViDeadlockGlobals' Participant[]."""
    b.layouts = _with_verifier_types(b.layouts)
    g = b.alloc(0x8170)
    b.u64(b.global_("nt!ViDeadlockGlobals", 8), g)
    nodes = []
    for thread, lk, kind, at in entries:
        res, th, node = b.alloc(0xf8), b.alloc(0x38), b.alloc(0xd0)
        b.put("_VI_DEADLOCK_RESOURCE", res, Type=kind, ResourceAddress=lk)
        b.put("_VI_DEADLOCK_THREAD", th, Thread=thread)
        b.put("_VI_DEADLOCK_NODE", node, Root=res, ThreadEntry=th)
        b.u64(node + 0x50, b.code(at))
        nodes.append(node)
    b.put("_VI_DEADLOCK_GLOBALS", g, NumberOfParticipants=len(nodes), Instigator=instigator)
    for i, n in enumerate(nodes):
        b.u64(g + 0x8068 + 8 * i, n)


def test_the_participants_verifier_recorded():
    b = ScenarioBuilder(WIN10)
    b.module("Drv", "Drv.sys")
    sysp = b.process("System", 4)
    t1 = b.thread(sysp, 0x10, "Drv!A", state="Running", frames=["Drv!A+0x10"])
    t2 = b.thread(sysp, 0x14, "Drv!B", frames=["Drv!B+0x10"])
    b.wait_on(t2, [b.event()], "Executive")
    locks = [b.alloc(0x38), b.alloc(0x38)]
    _verifier_db(b, [(t1, locks[0], 3, "Drv!A+0x40"), (t2, locks[1], 3, "Drv!B+0x40"),
                     (t1, locks[1], 3, "Drv!A+0x80")], locks[1])
    t = b.target()
    t._layouts = b.layouts
    a = analyze(CachedTarget(t))
    v = a.verifier
    assert v.available and v.instigator == locks[1]
    assert [(p.thread, p.lock, p.lock_type) for p in v.participants] == [
        (t1, locks[0], "VfDeadlockFastMutex"), (t2, locks[1], "VfDeadlockFastMutex"),
        (t1, locks[1], "VfDeadlockFastMutex")]
    assert v.participants[0].symbols == ["Drv!A+0x40"]
    # the report: a section of its own, and the same facts in JSON
    import io
    from pykd_ext.render.deadlock import render_text, to_dict
    from pykd_ext.render.style import Style
    out = io.StringIO()
    render_text(a, out, Style("plain"), "deadlock")
    text = out.getvalue()
    assert "DRIVER VERIFIER DEADLOCK DATABASE: 3 participants" in text
    assert "thread 0x%x acquired VfDeadlockFastMutex 0x%x at Drv!A+0x40" % (t1, locks[0]) in text
    d = json.loads(json.dumps(to_dict(a)))
    assert d["verifier"]["instigator"] == "0x%x" % locks[1] and len(d["verifier"]["participants"]) == 3


def test_unavailable_where_the_symbols_do_not_type_it():
    b = ScenarioBuilder(WIN10)
    b.global_("nt!ViDeadlockGlobals", 8)
    a = analyze(cached(b))
    assert not a.verifier.available and "_VI_DEADLOCK_GLOBALS" in a.verifier.reason
    b2 = ScenarioBuilder(WIN10)
    assert "not a symbol" in analyze(cached(b2)).verifier.reason


def test_triage_of_0xc4_blames_the_acquisition_that_closed_the_cycle():
    """0xC4/0x1001 (Verifier's deadlock detection): the verdict is the inversion Verifier
    recorded, and the driver at the last participant's acquire site is blamed."""
    from pykd_ext.analysis.triage import triage
    b = ScenarioBuilder(WIN10)
    b.module("Drv", "Drv.sys")
    sysp = b.process("System", 4)
    t1 = b.thread(sysp, 0x10, "Drv!A", state="Running", frames=["Drv!A+0x10"])
    b.processor(0, current_thread=t1)
    locks = [b.alloc(0x38), b.alloc(0x38)]
    _verifier_db(b, [(t1, locks[0], 8, "Drv!A+0x40"), (t1, locks[1], 8, "Drv!LockTables+0x80")], locks[1])
    b.bugcheck(0xC4, 0x1001, locks[1], 0, 0, cpu=0, irql=0)
    t = b.target()
    t._layouts = b.layouts
    r = triage(CachedTarget(t))
    assert r.verdict.what == "Driver Verifier recorded a lock-order inversion: 2 participants"
    assert (r.verdict.driver, r.verdict.function) == ("Drv.sys", "Drv!LockTables")
    assert r.signature == "0xC4_1001_Drv.sys!LockTables"
