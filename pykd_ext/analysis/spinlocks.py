"""Processors spinning on spin locks, the locks, and their holders, for the wait-for graph.

A processor spins when the code it runs now (its current thread's stack: the frames under
the bug check's clock interrupt, if any, down to the DPC dispatcher or the thread's base) has
a spin-lock acquire routine on top (KxWaitForSpinLockAndAcquire, KeAcquireSpinLock*,
KxWaitForLockOwnerShip, KeAcquireInStackQueuedSpinLock*, KeAcquireQueuedSpinLock*), with
only KeYieldProcessorEx and the like above it.  The lock is the acquire routine's first
argument: looked for in the acquire frames and the caller's home slots and local area, and
accepted only when its memory reads as a held spin lock (kernel/spinlocks.py).  Evidence of
the wait edges (spinner -> lock):

  queue-entry   the spinner's own KSPIN_LOCK_QUEUE (in its KLOCK_QUEUE_HANDLE, on its stack)
                names the lock with LOCK_QUEUE_WAIT set: exact, as the kernel recorded it;
  lock-queue    the processor's KPRCB.LockQueue[n] entry (a numbered queued lock) has
                LOCK_QUEUE_WAIT set: exact;
  spin-frame    a plain spin lock's address sits in the acquire frames and its word says held.

Holders.  Queued spin locks record theirs in the queue: the entry marked LOCK_QUEUE_OWNER
(x86) or, on x64, the non-waiting head entry whose Next chain reaches the tail the lock word
points at; that entry is mapped to the processor whose stack holds it (evidence
`queue-owner-bit` / `queue-head`, recorded).  A checked build's plain lock word holds the
owner thread + 1 (`lock-word-thread`, recorded).  Otherwise a plain spin lock records no
owner, and the other busy processors that run code of the module that takes the lock are
*candidates*, said to be inferred and never printed as recorded owners:

  dispatch-same-module  it runs that code at DISPATCH_LEVEL or above by evidence that exists:
                        inside a DPC or ISR (by its stack), or it is the processor that bug
                        checked and the IRQL it saved (its own KPRCB.DebuggerSavedIRQL, not
                        one an interrupt on top of that code saved) is DISPATCH_LEVEL or more;
  same-module-thread    weaker, listed after: it runs a thread in that code, at an IRQL
                        nothing recorded (a processor that did not bug check saved none:
                        analysis/dpc.py recorded_irql), so it may hold the lock or not.
"""
import struct

from ..errors import FieldNotFound, MemoryFault, SymbolNotFound, TypeNotFound
from ..kernel.processes import decode_thread
from ..kernel.spinlocks import (DISPATCH_LEVEL, LOCK_QUEUE_WAIT, PLAIN_ACQUIRERS, QUEUED_ACQUIRERS, YIELD_FRAMES,
                                decode_word, find_entries, kernel_pointer, lock_queue, queue_holder,
                                read_entry)
from ..kernel.stacks import frames as stack_frames
from .dpc import BUGCHECK_FRAMES, SCHEDULER, _fn, _is_interrupt_dispatch, recorded_irql, running_segment

PLAIN = {n.lower() for n in PLAIN_ACQUIRERS}
QUEUED = {n.lower() for n in QUEUED_ACQUIRERS}
SKIP = {n.lower() for n in YIELD_FRAMES} | set(SCHEDULER)
MAX_FRAME_SCAN = 0x1000          # bytes of acquire frames (and the caller's) searched for the lock
MAX_STACK_SCAN = 0x8000          # bytes of a running processor's stack searched for queue entries
RECORDED = ("queue-head", "queue-owner-bit", "lock-word-thread")


class Spinner(object):
    __slots__ = ("cpu", "thread", "function", "lock", "evidence", "module", "image", "entry")

    def __init__(self, cpu, thread, function):
        self.cpu, self.thread, self.function = cpu, thread, function
        self.lock = self.evidence = self.module = None
        self.image = None            # the module's image file name, as the JSON names a module
        self.entry = None            # its own queue entry, when the lock is a queued one

    def as_dict(self):
        return {"cpu": self.cpu.index, "thread": "0x%x" % self.thread, "spins_in": self.function,
                "lock": None if self.lock is None else "0x%x" % self.lock, "evidence": self.evidence,
                "module": self.image}


class Processor(object):
    __slots__ = ("index", "prcb", "thread", "irql", "frames", "segment", "lo", "hi", "next_thread")

    def __init__(self, index, prcb, thread, irql):
        self.index, self.prcb, self.thread, self.irql = index, prcb, thread, irql
        self.next_thread = 0
        self.frames, self.segment = [], None
        self.lo = self.hi = 0        # the stack range its frames span

    @property
    def raised(self):
        """What it runs now (its segment) is at DISPATCH_LEVEL or above by evidence: a DPC or ISR
        by its stack, or the IRQL it saved when it bug checked (recorded_irql: None for every
        other processor) -- unless an interrupt sits between the bug check and that code, whose
        IRQL is then the one saved."""
        if self.segment is not None and self.segment.kind is not None:
            return True
        if self.irql is None or self.irql < DISPATCH_LEVEL:
            return False
        b = next((i for i, f in enumerate(self.frames) if _fn(f) in BUGCHECK_FRAMES), None)
        start = next((i for i, f in enumerate(self.frames) if self.segment is not None and self.segment.frames
                      and f is self.segment.frames[0]), len(self.frames))
        return b is not None and not any(_is_interrupt_dispatch(f) for f in self.frames[b + 1:start])


class SpinLockReport(object):
    """One spin lock some processor spins on (address None: spinners whose lock was not found
    in their acquire frames): kind ("spin lock" / "queued spin lock"), word,
    spinners, holder (cpu, thread, evidence) when recorded, candidates [(cpu, thread, evidence)]
    when only inferred, the module that takes it."""

    def __init__(self, address, kind, word):
        self.address, self.kind, self.word = address, kind, word
        self.spinners = []
        self.holder = None
        self.candidates = []
        self.module = None
        self.image = None            # its image file name ("NetFlt.sys"), as the JSON names a module
        self.number = None           # KSPIN_LOCK_QUEUE_NUMBER of a numbered queued lock

    def as_dict(self, name=None):
        h = self.holder
        return {"lock": None if self.address is None else "0x%x" % self.address,
                "lock_kind": self.kind.lower() if self.kind else None, "lock_name": name or None,
                "lock_word": None if self.word is None else self.word.describe(),
                "queue_number": self.number, "module": self.image,
                "spinners": [s.as_dict() for s in self.spinners],
                "holder": None if h is None else {"cpu": h[0], "thread": None if h[1] is None else "0x%x" % h[1],
                                                  "evidence": h[2], "recorded": True},
                "holder_candidates": [{"cpu": c, "thread": "0x%x" % t, "evidence": ev, "recorded": False}
                                      for c, t, ev in self.candidates]}


class SpinLocks(object):
    def __init__(self, target, diags):
        self.target, self.diags = target, diags
        self.reports = {}            # lock -> SpinLockReport
        self.queues = {}             # cpu -> its KPRCB.LockQueue entries that name a lock
        self.cpus = []

    # -- processors and what they run -------------------------------------------------------

    def _processors(self, a):
        """Every processor, and the stack of what it runs when it is busy: a current thread that
        is not its idle thread, or a DPC running (DpcRoutineActive).  A spinner is at
        DISPATCH_LEVEL, so an idle processor with no DPC running cannot be one, and its stack
        (a debugger round trip when live) is not unwound."""
        try:
            procs = [(p.index, p.prcb) for p in self.target.processors()]
            lay = self.target.layouts().layout("_KPRCB")
            offs = [lay.offset(n) for n in ("CurrentThread", "IdleThread")]
            next_off = lay.offset("NextThread") if lay.has("NextThread") else None
            dpc_off = lay.offset("DpcRoutineActive") if lay.has("DpcRoutineActive") else None
        except (SymbolNotFound, TypeNotFound, FieldNotFound) as e:
            self.diags.add("missing-symbol", "spin locks: processors not listed: %s" % e)
            return []
        out = []
        for index, prcb in procs:
            try:
                cur, idle = (struct.unpack("<Q", self.target.read(prcb + o, 8))[0] for o in offs)
                nxt = struct.unpack("<Q", self.target.read(prcb + next_off, 8))[0] if next_off is not None else 0
                in_dpc = bool(self.target.read(prcb + dpc_off, 1)[0]) if dpc_off is not None else True
            except MemoryFault as e:
                self.diags.add("unreadable", "CPU %d: processor block 0x%x is unreadable" % (index, prcb), e.address)
                continue
            c = Processor(index, prcb, cur, None)
            c.next_thread = nxt
            out.append(c)
            if not cur or (cur == idle and not in_dpc):
                continue
            if cur not in a.thread_index:
                # an idle thread (the Idle process is on no list) running a DPC: known all the same
                try:
                    a.thread_index[cur] = decode_thread(self.target, cur, None)
                except MemoryFault as e:
                    self.diags.add("unreadable", "CPU %d: current thread 0x%x is unreadable" % (index, cur),
                                   e.address)
            c.frames = stack_frames(self.target, cur)
            c.segment = running_segment(c.frames)
            try:
                c.irql = recorded_irql(self.target, prcb, c.frames)
            except MemoryFault as e:
                self.diags.add("unreadable", "CPU %d: processor block 0x%x is unreadable" % (index, prcb), e.address)
            sps = [f.sp for f in c.frames if f.sp]
            if sps:
                c.lo, c.hi = min(sps), min(max(sps) + 0x200, min(sps) + MAX_STACK_SCAN)
        return out

    def _spinner(self, c):
        """Spinner when what `c` runs now has a spin-lock acquire on top, else None."""
        if c.segment is None:
            return None
        if not c.segment.frames:
            return None
        start = next(i for i, f in enumerate(c.frames) if f is c.segment.frames[0])
        for i in range(start, start + len(c.segment.frames)):
            fn = _fn(c.frames[i])
            if fn in SKIP:
                continue
            if fn in PLAIN or fn in QUEUED:
                return Spinner(c, c.thread, c.frames[i].function), i
            return None
        return None

    # -- the lock a spinner spins on ------------------------------------------------------------

    def _find_lock(self, c, sp, top, threads):
        frames = c.frames
        last = top
        while last + 1 < len(frames) and _fn(frames[last + 1]) in PLAIN | QUEUED:
            last += 1
        caller = frames[last + 1] if last + 1 < len(frames) else None
        mod = next((f.module for f in frames[last + 1:] if f.module is not None and not f.is_kernel), None)
        sp.module, sp.image = (mod.name, mod.image) if mod is not None else (None, None)
        lo = frames[top].sp
        hi = (caller.sp if caller is not None else frames[last].sp) + 0x40
        if not lo or hi <= lo or hi - lo > MAX_FRAME_SCAN:
            return
        try:
            raw = self.target.read(lo, hi - lo)
        except MemoryFault as e:
            self.diags.add("unreadable", "CPU %d: stack at 0x%x is unreadable" % (c.index, e.address), e.address)
            return
        words = struct.unpack("<%dQ" % (len(raw) // 8), raw[:len(raw) // 8 * 8])
        ips = {f.ip for f in frames}
        queued_wanted = any(_fn(f) in QUEUED for f in frames[top:last + 1])
        found = []                   # (rank, lock, word, evidence, entry)
        for w in words:
            if not kernel_pointer(w) or w in ips:
                continue
            try:
                nxt, lk = read_entry(self.target, w)
            except MemoryFault:
                continue
            if lk & LOCK_QUEUE_WAIT and kernel_pointer(lk & ~3) and c.lo <= w < max(c.hi, hi):
                try:
                    word = decode_word(self.target, lk & ~3, threads)
                except MemoryFault:
                    word = None
                if word is not None and word.kind == "queued":
                    found.append((0, lk & ~3, word, "queue-entry", w))
                    continue
            try:
                word = decode_word(self.target, w, threads)
            except MemoryFault:
                continue
            if word.kind == "queued":
                found.append((1 if queued_wanted else 2, w, word, "spin-frame", None))
            elif word.kind == "plain":
                found.append((2 if queued_wanted else 1, w, word, "spin-frame", None))
        if not found:
            return                   # reported with its lock unknown (not a fault: released just now, or
                                     # a word no spin lock this tool knows would hold)
        _, lock, word, evidence, entry = sorted(found, key=lambda x: x[0])[0]
        sp.lock, sp.evidence, sp.entry = lock, evidence, entry
        return word

    # -- the whole pass ---------------------------------------------------------------------------

    def settle(self, a, threads, stacks, lock, Edge):
        """Spinners, their locks and holders into the graph; the reports into a.spin_locks."""
        self.cpus = cpus = self._processors(a)
        # what the graph's reasons ask of the processors (CurrentThread, NextThread): these
        # reads are the only ones
        a.cpus = [(c.index, c.thread, c.next_thread) for c in cpus]
        if not cpus:
            return []
        listed = set(a.thread_index)
        spinners = []
        for c in cpus:
            hit = self._spinner(c)
            if hit is None:
                continue
            sp, top = hit
            word = self._find_lock(c, sp, top, listed)
            spinners.append(sp)
            if sp.lock is None:
                continue
            r = self.reports.get(sp.lock)
            if r is None:
                r = self.reports[sp.lock] = SpinLockReport(sp.lock, "queued spin lock" if word.kind == "queued"
                                                           else "spin lock", word)
            r.spinners.append(sp)
            if r.module is None:
                r.module, r.image = sp.module, sp.image
        self._numbered(cpus, spinners, listed)
        entries = self._queue_entries(cpus)
        edged = set()
        for r in sorted(self.reports.values(), key=lambda r: r.address):
            lk = lock(r.address, r.kind, "KSPIN_LOCK")
            lk.word = r.word.describe()
            for s in r.spinners:
                if (s.thread, r.address) not in edged:
                    a.edges.append(Edge(s.thread, r.address, None, "exclusive", s.evidence))
                    edged.add((s.thread, r.address))
            if r.kind == "queued spin lock":
                self._queued_holder(r, lk, entries, cpus)
            else:
                self._plain_holder(r, lk, cpus, listed)
        a.spin_locks = sorted(self.reports.values(), key=lambda r: r.address)
        for s in spinners:
            if s.lock is None:       # spinning, but no held spin lock was found in its acquire frames
                r = SpinLockReport(None, "spin lock", None)
                r.spinners.append(s)
                r.module, r.image = s.module, s.image
                a.spin_locks.append(r)
        return a.spin_locks

    def _numbered(self, cpus, spinners, listed):
        """KPRCB.LockQueue[n] entries that wait (LOCK_QUEUE_WAIT): that processor waits for the
        numbered queued lock the entry names."""
        by_cpu = {s.cpu.index: s for s in spinners}
        for c in cpus:
            try:
                q = self.queues[c.index] = lock_queue(self.target, c.prcb)
            except MemoryFault as e:
                self.diags.add("unreadable", "CPU %d: KPRCB.LockQueue is unreadable" % c.index, e.address)
                continue
            except (FieldNotFound, TypeNotFound) as e:
                self.diags.add("missing-type", "numbered queued spin locks not read: %s" % e)
                return
            for n, _, e in q:
                if not e.waiting:
                    continue
                try:
                    word = decode_word(self.target, e.lock, listed)
                except MemoryFault as ex:
                    self.diags.add("unreadable", "numbered queued lock %d (0x%x) is unreadable" % (n, e.lock),
                                   ex.address)
                    continue
                r = self.reports.get(e.lock)
                if r is None:
                    r = self.reports[e.lock] = SpinLockReport(e.lock, "queued spin lock", word)
                r.number = n
                sp = by_cpu.get(c.index)
                if sp is None or sp.lock not in (None, e.lock):
                    sp = Spinner(c, c.thread, "KPRCB.LockQueue[%d]" % n)
                    spinners.append(sp)
                sp.lock, sp.evidence, sp.entry = e.lock, "lock-queue", e.address
                if sp not in r.spinners:
                    r.spinners.append(sp)

    def _queue_entries(self, cpus):
        """{lock: [(QueueEntry, cpu)]}: every queue entry naming a queued lock reported, on the
        running processors' stacks and in their KPRCB.LockQueue."""
        queued = {r.address for r in self.reports.values() if r.kind == "queued spin lock"}
        out = {}
        if not queued:
            return out
        for c in cpus:
            found = []
            if c.lo and c.hi > c.lo:
                try:
                    found += find_entries(self.target, c.lo, c.hi, queued)
                except MemoryFault as e:
                    self.diags.add("unreadable", "CPU %d: stack at 0x%x is unreadable" % (c.index, e.address),
                                   e.address)
            found += [e for _, _, e in self.queues.get(c.index, ()) if e.lock in queued]   # read by _numbered
            for e in found:
                out.setdefault(e.lock, []).append((e, c))
        return out

    def _queued_holder(self, r, lk, entries, cpus):
        mine = entries.get(r.address, [])
        e, evidence = queue_holder(r.word, [x for x, _ in mine])
        if e is None:
            lk.note = ("a queued spin lock (%s): its holder's queue entry is on no processor's stack "
                       "(a holder that is not running, or a stack not in the dump)" % r.word.describe())
            return
        c = next(cc for x, cc in mine if x is e)
        r.holder = (c.index, c.thread, evidence)
        if c.thread and (c.thread, "exclusive") not in lk.owners:
            lk.owners.append((c.thread, "exclusive"))

    def _plain_holder(self, r, lk, cpus, listed):
        if r.word.thread:
            c = next((cc for cc in cpus if cc.thread == r.word.thread), None)
            r.holder = (c.index if c is not None else None, r.word.thread, "lock-word-thread")
            lk.owners.append((r.word.thread, "exclusive"))
            return
        spinning = {s.cpu.index for s in r.spinners}
        strong, weak = [], []
        for c in cpus:
            if c.index in spinning or not c.thread or r.module is None:
                continue
            seg = c.segment.frames if c.segment is not None else c.frames
            if any(f.module is not None and f.module.name == r.module for f in seg):
                if c.raised:
                    strong.append((c.index, c.thread, "dispatch-same-module"))
                else:
                    weak.append((c.index, c.thread, "same-module-thread"))
        r.candidates = strong + weak
        if r.candidates:
            first = r.candidates[0]
            lk.candidates = [t for _, t, _ in r.candidates]
            lk.owners.append((first[1], "exclusive"))
            lk.owner_evidence[first[1]] = first[2]
        else:
            lk.note = ("a spin lock (%s): the kernel records no owner, and no other busy processor runs %s code"
                       % (r.word.describe(), r.module or "the acquiring module's"))
