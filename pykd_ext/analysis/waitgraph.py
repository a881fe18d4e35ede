"""The wait-for graph: threads and lock objects, owner and wait edges, cycles and chains.

Nodes are thread and lock addresses (networkx DiGraph, attribute `kind`).  An edge
thread -> lock means "waits for" (attributes mode, evidence); lock -> thread means "held by"
(attribute mode).  Evidence says how a wait edge was inferred:

  wait-block    the thread's wait block names the lock's own wait object: the mutant, the
                fast/guarded mutex's event or gate, or (Windows 7/8.1) the KEVENT/KSEMAPHORE
                behind ERESOURCE.ExclusiveWaiters/SharedWaiters;
  wait-chain    Windows 10 and later: the resource's ExclusiveWaiters/SharedWaiters list of
                _KWAIT_CHAIN_ENTRY records names the thread (and its wait block names the event
                inside its record): exact, as the kernel recorded it;
  stack-scan    the thread waits inside an ERESOURCE acquire routine / ExpWaitForResource and
                the address of a known ERESOURCE sits in those frames: the fallback where no
                wait block or waiter chain names the resource (unreadable blocks or chains,
                resources the chain walk could not reach).

Owner entries are not proof of ownership: a shared acquirer that must wait is written into one
before it blocks (WRK/ReactOS ExAcquireResourceSharedLite), so an entry whose thread waits
*shared* for that same resource is a queued waiter, never an owner (`!locks` lists such
entries without its `<*>` owner mark).  A WaitAny wait on several objects is no hard edge:
a cycle through one is reported as conditional (it breaks if another object is signalled).
A resource waiter's wait time is only its current slice: ExpWaitForResource re-waits every
4 s (0.5 s the first time) and each wait resets KTHREAD.WaitTime.

Every cycle (a thread waiting on a lock it holds itself included) and every wait chain that
ends at a root blocker are reported; nothing here recurses, so it runs under WinDbg's
recursion limit of 500.
"""
import bisect
import itertools
import struct

import networkx as nx

from ..errors import FieldNotFound, MemoryFault, SymbolNotFound, TypeNotFound
from ..kernel.devices import device_containing
from ..kernel.diag import Diagnostics
from ..kernel.processes import all_threads
from ..kernel.resources import all_resources
from ..kernel.stacks import first_driver_frame, frames as stack_frames
from ..kernel.views import Struct
from ..kernel.waits import is_wait_any, object_type, wait_blocks, waited_objects
from . import crossobject, selfwait, verifier
from .pushlocks import PushLocks
from .spinlocks import SpinLocks
from ..progress import report, stopped
from ..target.layouts import supplement

MAX_CYCLES = 100

#: frames that mean "this thread is inside an ERESOURCE acquire", with the mode they ask for
RESOURCE_ACQUIRERS = {
    "nt!exacquireresourceexclusivelite": "exclusive",
    "nt!expacquireresourceexclusivelite": "exclusive",
    "nt!exacquireresourcesharedlite": "shared",
    "nt!expacquireresourcesharedlite": "shared",
    "nt!exacquiresharedstarveexclusive": "shared",
    "nt!expacquiresharedstarveexclusive": "shared",
    "nt!exacquiresharedwaitforexclusive": "shared",
    "nt!expacquiresharedwaitforexclusive": "shared",
    "nt!exentercriticalregionandacquireresourceexclusive": "exclusive",
    "nt!exentercriticalregionandacquireresourceshared": "shared",
    "nt!exentercriticalregionandacquiresharedwaitforexclusive": "shared",
    "nt!exacquirefastresourceexclusive": "exclusive",
    "nt!exacquirefastresourceshared": "shared",
    "nt!exacquirefastresourcesharedstarveexclusive": "shared",
    "nt!exenterpriorityregionandacquireresourceexclusive": "exclusive",
    "nt!exenterpriorityregionandacquireresourceshared": "shared",
    "nt!expwaitforresource": None,
    "nt!expwaitforresourceddk": None,
}


class Lock(object):
    """A lock object seen as held or waited on.  kind: ERESOURCE, mutant, fast mutex,
    guarded mutex.  owners: [(owner value, mode)]; owner values are thread addresses, except
    an ERESOURCE owner pointer (low bits 3).  typename: the structure it was decoded as;
    device: the device object whose extension holds it, when that is how it was named."""
    __slots__ = ("address", "kind", "typename", "owners", "name", "device", "waiters", "queued",
                 "owner_pointers", "note", "owner_evidence", "candidates", "word", "table_entries")

    def __init__(self, address, kind, typename=None, owners=(), name=None):
        self.address = address
        self.kind = kind
        self.typename = typename
        self.owners = list(owners)
        self.name = name
        self.device = None
        self.waiters = []
        self.queued = []          # shared waiters the kernel wrote into owner entries
        self.owner_pointers = {}  # owner thread -> the ExSetResourceOwnerPointerEx value naming it
        self.note = None          # why the owner is unknown, when it is
        self.owner_evidence = {}  # owner -> how it was inferred (push locks record no owner)
        self.candidates = []      # inferred owners ranked, the first one in the graph
        self.word = None          # a push lock's decoded lock word
        self.table_entries = []   # owner-table entries of an exclusively owned ERESOURCE


class Edge(object):
    """thread waits for lock (held by holder).  any_of: the other objects of a WaitAny wait —
    the thread goes on when any of them is signalled, so the edge is not a hard one."""
    __slots__ = ("thread", "lock", "holder", "mode", "evidence", "any_of")

    def __init__(self, thread, lock, holder, mode, evidence, any_of=()):
        self.thread, self.lock, self.holder, self.mode, self.evidence = thread, lock, holder, mode, evidence
        self.any_of = list(any_of)

    def as_dict(self):
        return {"thread": "0x%x" % self.thread, "waits_for": "0x%x" % self.lock,
                "held_by": None if self.holder is None else "0x%x" % self.holder,
                "mode": self.mode, "evidence": self.evidence,
                "or_any_of": ["0x%x" % o for o in self.any_of]}


class ThreadFacts(object):
    """What the report shows of one thread."""
    __slots__ = ("thread", "state", "wait_reason", "ticks", "seconds", "frames", "driver",
                 "start_symbol", "holds", "waits_on", "wait_slice")

    def __init__(self, thread):
        self.thread = thread
        self.state = self.wait_reason = None
        self.ticks = self.seconds = None
        self.frames = None       # loaded on demand: [FrameInfo], innermost first
        self.driver = None
        self.start_symbol = ""
        self.holds = []          # [(lock address, mode)]
        self.waits_on = []       # [(object address, object type)] for waits that are not locks
        self.wait_slice = False  # ticks/seconds are the current ExpWaitForResource slice only

    @property
    def address(self):
        return self.thread.address


class Cycle(object):
    """conditional: objects whose signal would break the cycle (its WaitAny edges' other
    objects); empty for a hard deadlock."""

    def __init__(self, threads, locks, edges, inferred=()):
        self.threads, self.locks, self.edges = threads, locks, edges
        self.conditional = [o for e in edges for o in e.any_of]
        self.inferred = list(inferred)       # [(lock, owner, evidence)] for owners not recorded


class Chain(object):
    """Waiters whose waits end at one root: a thread that is not waiting on an owned lock,
    or a lock with no usable owner.  paths: one list of Edges per waiter, waiter first."""

    def __init__(self, root, root_kind, reason, paths, root_evidence=None):
        self.root, self.root_kind, self.reason, self.paths = root, root_kind, reason, paths
        self.root_evidence = root_evidence   # how the root was inferred as an owner, if it was
        self.suspected = None                # a suspected lock + event deadlock (analysis/crossobject.py)


class Analysis(object):
    def __init__(self):
        self.cycles = []
        self.chains = []
        self.threads = {}      # address -> ThreadFacts
        self.locks = {}        # address -> Lock
        self.edges = []
        self.diagnostics = Diagnostics()
        self.counts = {"processes": 0, "threads": 0, "resources": 0}
        self.graph = nx.DiGraph()
        self.interrupted = None
        self.thread_index = {}
        self.pending = {}      # address -> ThreadFacts of every waiting thread looked at
        self.cpus = []         # [(cpu, CurrentThread, NextThread)]: the spin-lock pass's PRCB reads
        self.verifier = None   # analysis/verifier.py: Driver Verifier's deadlock data, if any
        self.facts = None
        self.name_lock = None
        self._edges = {}       # (thread, lock) -> Edge
        self.spin_locks = []   # SpinLockReport of each spin lock a processor spins on (analysis/spinlocks.py)


def reported_locks(a):
    """The locks findings speak of: waited for, or held by a thread in the graph."""
    held = {l for f in a.threads.values() for l, _ in f.holds}
    return {k: l for k, l in a.locks.items() if l.waiters or k in held}


def current_tick(target, diags):
    """(tick count now, tick length in 100 ns) from KUSER_SHARED_DATA and KeMaximumIncrement."""
    sup = supplement()
    try:
        shared = int(sup["addresses"]["KI_USER_SHARED_DATA"], 16)
        tick = Struct(target, "_KUSER_SHARED_DATA", shared)["TickCountQuad"]
        inc = struct.unpack("<I", target.read(target.symbol("nt!KeMaximumIncrement"), 4))[0]
        return tick, inc
    except (MemoryFault, SymbolNotFound, TypeNotFound, FieldNotFound) as e:
        diags.add("unreadable", "wait times unknown: cannot read the tick count (%s)" % e)
        return None, None


class StackIndex(object):
    """Which thread's kernel stack holds an address (sorted ranges, bisect)."""

    def __init__(self, threads):
        self.ranges = sorted((t.stack_limit, t.stack_base, t.address) for t in threads if t.stack_base)
        self.starts = [r[0] for r in self.ranges]

    def owner(self, address):
        i = bisect.bisect_right(self.starts, address) - 1
        if i >= 0 and address < self.ranges[i][1]:
            return self.ranges[i][2]
        return None


def lock_name(target, address, stacks):
    """(name, device): a global's symbol, else module+0xoff, else where it lives; device is
    the device object whose extension holds the lock, when that names it."""
    s = target.describe(address)
    if "!" in s and "+" not in s:
        return s, None
    if target.module_at(address) is not None:
        return s, None
    t = stacks.owner(address)
    if t is not None:
        return "on the stack of thread 0x%x" % t, None
    dev = device_containing(target, address)
    if dev is not None:
        devobj, off, drv = dev
        return "%sdevice 0x%x extension+0x%x" % ((drv + " ") if drv else "", devobj, off), devobj
    return "", None


def analyze(target):
    """Build the wait-for graph of `target` and find its cycles and chains."""
    a = Analysis()
    diags = a.diagnostics
    try:
        _collect(target, a)
    except (KeyboardInterrupt, SystemExit) as e:
        a.interrupted = stopped(target, e)
        diags.add("interrupted", "interrupted (%s): the results below cover what was read before"
                  % a.interrupted)
    _build_graph(a, target)
    _find_cycles_and_chains(a)
    try:
        crossobject.suspect(a, target)
        a.verifier = verifier.read(target, diags)
    except (KeyboardInterrupt, SystemExit) as e:
        a.interrupted = a.interrupted or stopped(target, e)
        diags.add("interrupted", "interrupted (%s): the results below cover what was read before" % a.interrupted)
    return a


def _collect(target, a):
    diags = a.diagnostics
    procs, threads, d = all_threads(target)
    diags.extend(d)
    a.counts["processes"], a.counts["threads"] = len(procs), len(threads)
    tindex = a.thread_index = {t.address: t for t in threads}
    try:
        resources, _ = all_resources(target, diags)
    except (SymbolNotFound, FieldNotFound, TypeNotFound) as e:
        diags.add("missing-symbol", "ERESOURCEs not listed: %s" % e)
        resources = []
    a.counts["resources"] = len(resources)
    rindex = {r.address: r for r in resources}
    exclusive_owned = {}                 # thread -> resources it owns exclusively
    for r in resources:
        if r.exclusive:
            for o, _ in r.owners:
                exclusive_owned.setdefault(o, set()).add(r.address)
    tick, inc = current_tick(target, diags)
    states = target.layouts().enum_names("_KTHREAD_STATE")
    reasons = target.layouts().enum_names("_KWAIT_REASON")

    def facts(t):
        """What a thread shows: cheap fields now; its stack only when load_stack() asks
        (a stack unwind is a debugger round trip per thread on a live target)."""
        f = a.pending.get(t.address)
        if f is None:
            f = a.pending[t.address] = ThreadFacts(t)
            f.state = states.get(t.state, "State%s" % t.state)
            f.wait_reason = reasons.get(t.wait_reason, "WaitReason%s" % t.wait_reason)
            if tick is not None and f.state == "Waiting":
                f.ticks = (tick - t.wait_time) & 0xFFFFFFFF
                f.seconds = f.ticks * inc / 1e7
        return f

    def load_stack(f):
        if f.frames is None:
            t = f.thread
            f.frames = stack_frames(target, t.address)
            drv = first_driver_frame(f.frames)
            f.driver = drv.module.image if drv else None
            f.start_symbol = target.describe(t.start_address) if t.start_address else ""
        return f

    a.facts = lambda t: load_stack(facts(t))
    stacks = StackIndex(threads)
    a.name_lock = lambda address: lock_name(target, address, stacks)

    def lock(address, kind, typename):
        lk = a.locks.get(address)
        if lk is None:
            lk = a.locks[address] = Lock(address, kind, typename)
        return lk

    def resource_lock(r):
        lk = lock(r.address, "ERESOURCE", "_ERESOURCE")
        lk.owners = list(r.owners)          # _settle_resource_owners sorts them, once, after all
        lk.table_entries = list(r.table_waiters)
        if r.fast:
            lk.note = ("a fast resource (ExInitializeFastResource): its owners are not recorded "
                       "in OwnerEntry")
        return lk

    lays = target.layouts()
    # owners of every resource that is held; what its waiters block on
    waiter_objects = {}                  # KEVENT/KSEMAPHORE (7, 8.1) -> (resource, mode)
    chain_events = {}                    # event in a _KWAIT_CHAIN_ENTRY (10+) -> (resource, mode)
    chain_threads = {}                   # thread -> [(resource, mode)] from the waiter chains
    chain_lay = lays.layout("_KWAIT_CHAIN_ENTRY") if lays.has_type("_KWAIT_CHAIN_ENTRY") else None
    ev_off = chain_lay.offset("Event") if chain_lay is not None and chain_lay.has("Event") else 0
    for r in resources:
        if r.owners or r.fast:
            resource_lock(r)
        if r.chain is not None:
            for mode, entries in r.chain.items():
                for th, entry in entries:
                    chain_events[entry + ev_off] = (r, mode)
                    if th and th not in tindex:
                        diags.add("inconsistent", "ERESOURCE 0x%x: %s waiter chain entry 0x%x names 0x%x, "
                                  "which is no listed thread" % (r.address, mode, entry, th), entry)
                    elif th:
                        chain_threads.setdefault(th, []).append((r, mode))
            continue
        if r.exclusive_waiters:
            waiter_objects[r.exclusive_waiters] = (r, "exclusive")
        if r.shared_waiters:
            waiter_objects[r.shared_waiters] = (r, "shared")

    fm_event = lays.layout("_FAST_MUTEX").offset("Event")
    gm = lays.layout("_KGUARDED_MUTEX") if lays.has_type("_KGUARDED_MUTEX") else None
    gm_gate = gm.offset("Gate") if gm is not None and gm.has("Gate") else None
    mutex_reasons = {"WrFastMutex", "WrGuardedMutex"}

    pushes = PushLocks(target, diags)
    stack_waiters = []                   # waiting on an object on their own stack only
    state_values = target.layouts().enum("_KTHREAD_STATE")
    waiting = state_values.get("Waiting", 5)
    runnable = {state_values[n] for n in ("Running", "Ready", "Standby", "DeferredReady") if n in state_values}
    for i, t in enumerate(threads):
        if not i & 0xff:
            report(target, "threads' waits examined", i)
        if t.state != waiting:
            # KTHREAD.WaitReason keeps the last wait's reason after the thread is woken (the
            # wait setup writes it; nothing clears it: ReactOS ke_x.h, KiUnwaitThread), so only
            # runnable threads whose last wait was for a resource are unwound and looked at
            if t.state in runnable and reasons.get(t.wait_reason) == "WrResource":
                _not_waiting(target, t, facts(t), load_stack, rindex, exclusive_owned, diags, a, resource_lock,
                             chain_threads)
            continue
        blocks = wait_blocks(t, diags)
        objs = waited_objects(blocks)
        f = facts(t)
        found = False
        mine = []                        # (edge, object waited on) of this thread
        for wb in objs:
            obj = wb.object
            if obj in waiter_objects or obj in chain_events:
                r, mode = waiter_objects[obj] if obj in waiter_objects else chain_events[obj]
                resource_lock(r)
                mine.append((Edge(t.address, r.address, None, mode,
                                  "wait-block" if obj in waiter_objects else "wait-chain"), obj))
                found = True
                continue
            try:
                otype = object_type(target, obj)
            except MemoryFault as e:
                diags.add("unreadable", "thread 0x%x waits on 0x%x, which is unreadable" % (t.address, obj),
                          e.address)
                f.waits_on.append((obj, "unreadable"))
                continue
            if otype == "MutantObject":
                try:
                    owner = Struct(target, "_KMUTANT", obj)["OwnerThread"]
                except MemoryFault as e:
                    diags.add("unreadable", "mutant 0x%x is unreadable" % obj, e.address)
                    owner = 0
                lk = lock(obj, "mutant", "_KMUTANT")
                lk.owners = [(owner, "exclusive")] if owner else []
                mine.append((Edge(t.address, obj, None, "exclusive", "wait-block"), obj))
                found = True
                continue
            # a fast/guarded mutex's waiter blocks on its event (gate on 7) with wait reason
            # WrFastMutex / WrGuardedMutex (WRK KiAcquireGuardedMutex; decompiled Win10/11
            # ExpAcquireFastMutexContended): without that wait reason a SynchronizationEvent is
            # just an event, whatever sits 0x10 bytes before it
            mutex = None
            if f.wait_reason in mutex_reasons:
                if otype == "EventSynchronizationObject":
                    mutex = (obj - fm_event, "fast mutex", "_FAST_MUTEX")
                elif otype == "GateObject" and gm_gate is not None:
                    mutex = (obj - gm_gate, "guarded mutex", "_KGUARDED_MUTEX")
            if mutex is not None:
                try:
                    owner = Struct(target, mutex[2], mutex[0])["Owner"]
                except MemoryFault as e:
                    diags.add("unreadable", "%s 0x%x is unreadable" % (mutex[1], mutex[0]), e.address)
                    owner = 0
                kind = mutex[1]
                if kind == "fast mutex" and f.wait_reason == "WrGuardedMutex":
                    kind = "guarded mutex"
                lk = lock(mutex[0], kind, mutex[2])
                lk.owners = [(owner, "exclusive")] if owner else []
                mine.append((Edge(t.address, mutex[0], None, "exclusive", "wait-block"), obj))
                found = True
                continue
            f.waits_on.append((obj, otype))
        if not mine and t.address in chain_threads:
            # its wait block did not name the chain's event (unreadable, or another wait), but
            # the resource's waiter chain names the thread
            for r, mode in chain_threads[t.address]:
                resource_lock(r)
                mine.append((Edge(t.address, r.address, None, mode, "wait-chain"), None))
            found = True
        if is_wait_any(blocks):
            for e, obj in mine:
                e.any_of = [o.object for o in objs if o.object != obj]
        for e, _ in mine:
            a.edges.append(e)
            if a.locks[e.lock].kind == "ERESOURCE":
                f.wait_slice = True
        if objs and all(t.on_stack(o.object) for o in objs):
            stack_waiters.append(t)
        if not found and f.wait_reason == "WrPushLock":
            hit = pushes.waiter(t, load_stack(f), objs)
            if hit is not None:
                lk_addr, mode, wb = hit
                lock(lk_addr, "push lock", "_EX_PUSH_LOCK")
                a.edges.append(Edge(t.address, lk_addr, None, mode, "wait-block-chain"))
                f.waits_on = [w for w in f.waits_on if w[0] != wb]
                found = True
        # the stack scan is for waits on an event on the waiter's own stack (the ERESOURCE
        # mechanics of 19041 and later) or waits whose blocks could not be read
        if not found and (not objs or any(t.on_stack(w.object) for w in objs)):
            e = _stack_scan(target, t, load_stack(f), rindex, exclusive_owned, diags)
            if e is not None:
                resource_lock(rindex[e.lock])
                a.edges.append(e)
                f.wait_slice = True
                f.waits_on = [w for w in f.waits_on if not t.on_stack(w[0])]
    _settle_resource_owners(a, tindex)
    pushes.settle(a, threads, stacks, lock, Edge)
    _self_waits(a, stack_waiters, facts, load_stack, lock, diags)
    SpinLocks(target, diags).settle(a, threads, stacks, lock, Edge)


def _self_waits(a, candidates, facts, load_stack, lock, diags):
    """Waiting threads with no lock edge whose stacks show a documented self-wait
    (analysis/selfwait.py): a one-thread deadlock on the callback they are inside of.  Only
    threads that wait on an object on their own stack are candidates: the rundown waits these
    patterns end in block on an event in a wait block on the waiter's stack (ReactOS
    ExfWaitForRundownProtectionRelease), so the common waits on pool or global events are not
    unwound (each unwind is a debugger round trip on a live target)."""
    edged = {e.thread for e in a.edges}
    looked = 0
    for t in candidates:
        if t.address in edged:
            continue
        f = facts(t)
        if f.wait_reason not in selfwait.PATTERN_WAIT_REASONS:
            continue
        if looked >= selfwait.MAX_PATTERN_THREADS:
            diags.add("cap", "self-wait patterns: only %d threads' stacks were looked at"
                      % selfwait.MAX_PATTERN_THREADS)
            return
        looked += 1
        hit = selfwait.match(load_stack(f).frames or [])
        if hit is None:
            continue
        pattern, callback = hit
        key = callback.ip if callback is not None else t.address
        lk = lock(key, "callback rundown", None)
        lk.name = "%s%s" % (pattern["name"], " in %s" % callback.symbol if callback is not None else "")
        lk.note = "%s (%s)" % (pattern["explain"], pattern["source"])
        lk.owners = [(t.address, "self")]
        lk.owner_evidence[t.address] = "stack-pattern"
        f.waits_on = []
        a.edges.append(Edge(t.address, key, None, "self", "stack-pattern"))


def _not_waiting(target, t, f, load_stack, rindex, exclusive_owned, diags, a, resource_lock, chain_threads):
    """A thread that is not Waiting but stands inside an ERESOURCE acquire routine is a waiter
    all the same: a resource time-out break stops the waiter that timed out running there
    (ExpWaitForResource's DbgBreakPoint after ExpResourceTimeoutCount re-waits: ReactOS), and a
    waiter just woken or preempted is Ready or Standby.  On 10+ the resource's waiter chain
    still names it; elsewhere its edge is found by the stack scan."""
    if t.address in chain_threads:
        for r, mode in chain_threads[t.address]:
            resource_lock(r)
            a.edges.append(Edge(t.address, r.address, None, mode, "wait-chain"))
        return
    frames = load_stack(f).frames or []
    if not any((fr.function or "").lower() in RESOURCE_ACQUIRERS for fr in frames):
        return
    e = _stack_scan(target, t, f, rindex, exclusive_owned, diags)
    if e is not None:
        resource_lock(rindex[e.lock])
        a.edges.append(e)


def _settle_resource_owners(a, tindex):
    """Owner entries that are waiters are not owners: an entry whose thread waits *shared*
    for that same resource was written by ExAcquireResourceSharedLite before it blocked.  An
    owner pointer with FLAG_OWNER_POINTER_IS_THREAD names its thread as value & ~3."""
    shared_waiters = {}
    for e in a.edges:
        if e.mode == "shared":
            shared_waiters.setdefault(e.lock, set()).add(e.thread)
    for addr, lk in a.locks.items():
        if lk.kind != "ERESOURCE":
            continue
        queued = shared_waiters.get(addr, ())
        owners = []
        for o, m in lk.owners:
            if m == "shared" and o in queued:
                lk.queued.append(o)
                continue
            if o & 3 == 3 and (o & ~3) in tindex:
                lk.owner_pointers[o & ~3] = o
                o = o & ~3
            owners.append((o, m))
        lk.owners = owners
        # an exclusively owned resource's table entries hold only queued shared waiters
        # (ExpFindFreeEntry); one whose thread is not seen waiting for it is left unexplained
        for t in lk.table_entries:
            if t in queued and t not in lk.queued:
                lk.queued.append(t)



def _build_graph(a, target):
    """Wait edges, and owner edges of the locks somebody waits for, into the graph; then the
    full facts (stack, driver) of every thread in it and the names of its locks."""
    g = a.graph
    for e in a.edges:
        g.add_node(e.thread, kind="thread")
        g.add_node(e.lock, kind="lock")
        g.add_edge(e.thread, e.lock, mode=e.mode, evidence=e.evidence)
        a._edges[e.thread, e.lock] = e
        a.locks[e.lock].waiters.append(e.thread)
    for lk in a.locks.values():
        if not lk.waiters:
            continue                   # held, uncontended: shown in its owner's "holds" only
        for owner, mode in lk.owners:
            if owner & 3 == 3 and lk.kind == "ERESOURCE":
                continue               # an owner pointer, not a thread
            g.add_node(owner, kind="thread")
            g.add_edge(lk.address, owner, mode=mode)
    try:
        for node, data in g.nodes(data=True):
            if data.get("kind") == "thread" and node in a.thread_index and a.facts is not None:
                a.threads[node] = a.facts(a.thread_index[node])
        for lk in a.locks.values():
            for owner, mode in lk.owners:
                if owner in a.threads:
                    a.threads[owner].holds.append((lk.address, mode))
                    if a.name_lock is not None and lk.name is None:
                        lk.name, lk.device = a.name_lock(lk.address)
            if lk.waiters and a.name_lock is not None and lk.name is None:
                lk.name, lk.device = a.name_lock(lk.address)
    except (KeyboardInterrupt, SystemExit) as e:
        a.interrupted = a.interrupted or stopped(target, e)
        a.diagnostics.add("interrupted", "interrupted (%s): the results below cover what was read before"
                          % a.interrupted)


def _stack_scan(target, t, f, rindex, exclusive_owned, diags):
    """Find the ERESOURCE a thread waits for from its frames inside an acquire routine."""
    idx = [i for i, fr in enumerate(f.frames) if (fr.function or "").lower() in RESOURCE_ACQUIRERS]
    if not idx or not rindex:
        return None
    first, last = idx[0], idx[-1]
    mode = None
    for i in idx:
        mode = RESOURCE_ACQUIRERS[f.frames[i].function.lower()] or mode
    lo = f.frames[first].sp
    caller = f.frames[last + 1] if last + 1 < len(f.frames) else None
    hi = (caller.sp if caller is not None else f.frames[last].sp) + 0x40
    if not lo or hi <= lo or hi - lo > 0x4000:
        return None
    try:
        raw = target.read(lo, hi - lo)
    except MemoryFault as e:
        diags.add("unreadable", "thread 0x%x: stack at 0x%x is unreadable" % (t.address, e.address), e.address)
        return None
    words = struct.unpack("<%dQ" % (len(raw) // 8), raw[:len(raw) // 8 * 8])
    own_exclusive = exclusive_owned.get(t.address, ())
    candidates = []
    for w in words:
        r = rindex.get(w)
        if r is None or r.address in own_exclusive or r.address in [c.address for c in candidates]:
            continue
        candidates.append(r)
    if not candidates:
        return None
    # a resource somebody else holds is the one being waited for; nearest the wait first
    held = [r for r in candidates if r.active_count and any(o != t.address for o, _ in r.owners)]
    r = (held or candidates)[0]
    return Edge(t.address, r.address, None, mode or "exclusive", "stack-scan")


def _find_cycles_and_chains(a):
    g = a.graph
    in_cycle = set()
    seen_cycles = set()
    sccs = [c for c in nx.strongly_connected_components(g) if len(c) > 1]
    for comp in sorted(sccs, key=min):
        sub = g.subgraph(comp)
        for cyc in itertools.islice(nx.simple_cycles(sub), MAX_CYCLES):
            threads = [n for n in cyc if g.nodes[n].get("kind") == "thread"]
            start = cyc.index(min(threads))
            cyc = cyc[start:] + cyc[:start]
            key = tuple(cyc)
            if key in seen_cycles:
                continue
            seen_cycles.add(key)
            edges = []
            for i in range(0, len(cyc), 2):
                th, lk = cyc[i], cyc[i + 1]
                nxt = cyc[(i + 2) % len(cyc)]
                e = _edge(a, th, lk)
                edges.append(Edge(th, lk, nxt, e.mode, e.evidence, e.any_of))
            inferred = [(e.lock, e.holder, a.locks[e.lock].owner_evidence[e.holder]) for e in edges
                        if e.holder in a.locks[e.lock].owner_evidence]
            a.cycles.append(Cycle(cyc[0::2], cyc[1::2], edges, inferred))
            in_cycle.update(cyc)
            if len(a.cycles) >= MAX_CYCLES:
                a.diagnostics.add("cap", "more than %d cycles: the rest are not listed" % MAX_CYCLES)
                break

    # chains: every waiting thread outside a cycle, to the roots its waits end at
    roots = {}
    waiters = sorted({e.thread for e in a.edges} - in_cycle)
    for w in waiters:
        ends = _terminals(g, w, in_cycle)
        for end in ends:
            path_nodes = nx.shortest_path(g, w, end)
            path = []
            for i in range(0, len(path_nodes) - 1, 2):
                th, lk = path_nodes[i], path_nodes[i + 1]
                holder = path_nodes[i + 2] if i + 2 < len(path_nodes) else None
                e = _edge(a, th, lk)
                path.append(Edge(th, lk, holder, e.mode, e.evidence, e.any_of))
            roots.setdefault(end, []).append(path)
    for root in sorted(roots):
        kind = g.nodes[root].get("kind")
        evidence = None
        for p in roots[root]:
            if p and p[-1].holder == root:
                evidence = evidence or a.locks[p[-1].lock].owner_evidence.get(root)
        a.chains.append(Chain(root, kind, _root_reason(a, root, in_cycle), roots[root], evidence))


def _edge(a, thread, lock):
    return a._edges.get((thread, lock))


def _terminals(g, start, in_cycle, cap=100000):
    """Nodes where waits from `start` end: threads with no wait edge, locks with no owner
    thread, or the first node of a cycle.  Iterative (no recursion)."""
    out, seen, todo = [], {start}, [start]
    while todo and len(seen) < cap:
        n = todo.pop()
        if n != start and n in in_cycle:
            out.append(n)
            continue
        succ = list(g.successors(n))
        if not succ:
            out.append(n)
            continue
        for s in succ:
            if s not in seen:
                seen.add(s)
                todo.append(s)
    return sorted(set(out))


def _root_reason(a, root, in_cycle):
    if root in in_cycle:
        for i, c in enumerate(a.cycles):
            if root in c.threads or root in c.locks:
                return "waits behind deadlock cycle %d" % (i + 1)
    lk = a.locks.get(root)
    if lk is not None:
        ptrs = [o for o, _ in lk.owners if o & 3 == 3]
        if ptrs:
            return "owned through owner pointer 0x%x (ExSetResourceOwnerPointer), not a thread" % ptrs[0]
        if lk.note:
            return lk.note
        return "has no recorded owner"
    f = a.threads.get(root)
    if f is None:
        return "owner thread 0x%x is not in any process's thread list (exited or freed?)" % root
    if f.state == "Terminated":
        return "terminated while holding the lock"
    if f.state == "Running":
        cpu = [c for c, cur, _ in a.cpus if cur == root]
        where = " on processor %d" % cpu[0] if cpu else ""
        return "running%s (not waiting): it holds the lock and should release it" % where
    if f.state in ("Ready", "Standby", "DeferredReady"):
        return _ready_reason(a, f)
    if f.state == "Waiting":
        if is_sleeping(f):
            how = " for %s" % format_duration(f.seconds) if f.seconds is not None else ""
            return "sleeping (KeDelayExecutionThread, %s) while holding the lock%s" % (f.wait_reason, how)
        acq = [fr.function for fr in f.frames if (fr.function or "").lower() in RESOURCE_ACQUIRERS]
        if acq:
            return ("waiting in %s for an ERESOURCE that is not on nt!ExpSystemResourcesList "
                    "or not readable" % acq[-1])
        return wait_summary(f)
    return "in state %s" % f.state


def waited_processor(a, f):
    """(processor, the thread it runs) for a runnable thread: the processor whose PRCB names it
    NextThread (Standby), else KTHREAD.NextProcessor(Number); the running thread is None when
    that processor's block was not read, the processor None when neither is known."""
    cpu = None
    for c, _, nxt in a.cpus:
        if nxt == f.address:
            cpu = c
    if cpu is None:
        try:
            v = f.thread.view
            cpu = v.get("NextProcessorNumber", None)
            if cpu is None:
                cpu = v.get("NextProcessor", None)
        except MemoryFault:
            cpu = None
    runs = [cur for c, cur, _ in a.cpus if c == cpu] if cpu is not None else []
    return cpu, (runs[0] if runs else None)


def _ready_reason(a, f):
    """A lock owner that could run but does not: which processor it waits for, and what runs
    there (KTHREAD.NextProcessor; a Standby thread is its PRCB's NextThread)."""
    cpu, cur = waited_processor(a, f)
    what = {"Ready": "ready to run but not running", "Standby": "chosen to run next but not yet running",
            "DeferredReady": "made ready (deferred) but not yet queued to run"}[f.state]
    if cpu is None:
        return "%s (%s)" % (what, f.state)
    if cur is None:
        return "%s on processor %d (%s)" % (what, cpu, f.state)
    other = a.thread_index.get(cur)
    desc = "thread 0x%x" % cur
    if other is not None:
        desc += " (Cid %s%s)" % (other.cid, ", " + other.process.name if other.process else "")
    return "%s: it waits for processor %d (%s), which runs %s" % (what, cpu, f.state, desc)


def is_sleeping(f):
    """KeDelayExecutionThread: a DelayExecution wait on nothing but timers."""
    return (f.state == "Waiting" and f.wait_reason in ("DelayExecution", "WrDelayExecution")
            and all(k.startswith("Timer") for _, k in f.waits_on))


def wait_summary(f):
    """What a waiting thread waits on, in words: 'sleeping (DelayExecution) for 0:00:05:00.000',
    'waiting (Executive) on NotificationEvent 0x... for ...'."""
    how = "for %s" % format_duration(f.seconds) if f.seconds is not None else ""
    if is_sleeping(f):
        return ("sleeping (%s) %s" % (f.wait_reason, how)).strip()
    objs = ", ".join("%s 0x%x" % (_kind_name(k), o) for o, k in f.waits_on) or "an unknown object"
    return ("waiting (%s) on %s %s" % (f.wait_reason, objs, how)).strip()


def path_of(a, thread):
    """Where a thread's waits lead: ("cycle", Cycle) when it is in a deadlock cycle,
    ("chain", Chain, [Edge]) when it waits behind a root blocker, else None.  The index is
    built once per analysis (callers ask for every thread of every IRP)."""
    key = (len(a.cycles), len(a.chains))
    cached = a.__dict__.get("_paths")
    if cached is None or cached[0] != key:
        index = {}
        for ch in reversed(a.chains):
            for p in reversed(ch.paths):
                if p:
                    index[p[0].thread] = ("chain", ch, p)
        for c in reversed(a.cycles):
            for t in c.threads:
                index[t] = ("cycle", c)
        cached = a.__dict__["_paths"] = (key, index)
    return cached[1].get(thread)


def _kind_name(otype):
    return {"EventNotificationObject": "NotificationEvent",
            "EventSynchronizationObject": "SynchronizationEvent",
            "SemaphoreObject": "Semaphore", "MutantObject": "Mutant", "TimerNotificationObject": "Timer",
            "TimerSynchronizationObject": "Timer", "ThreadObject": "Thread",
            "ProcessObject": "Process", "GateObject": "Gate", "QueueObject": "Queue"}.get(otype, otype)


def format_duration(seconds):
    """0:00:10:00.026 style, as !thread prints it (d:hh:mm:ss.mmm)."""
    if seconds is None:
        return "?"
    ms = int(round(seconds * 1000))
    s, ms = divmod(ms, 1000)
    m, s = divmod(s, 60)
    h, m = divmod(m, 60)
    d, h = divmod(h, 24)
    return "%d:%02d:%02d:%02d.%03d" % (d, h, m, s, ms)
