"""Executive resources (ERESOURCE): initialise, acquire, wait — as the kernel's routines do.

Sources (each routine below names the one it plays):
- WRK v1.2 base/ntos/ex/resource.c and ReactOS ntoskrnl/ex/resource.c:
  ExInitializeResourceLite, ExAcquireResourceExclusiveLite, ExAcquireResourceSharedLite,
  ExpFindFreeEntry, ExpFindEntryForThread, ExpExpandResourceOwnerTable, ExpWaitForResource.
- Windows 10 and later (Geoff Chappell, eresource.htm, dates the change to 10.0; decompiled
  Win10/11 ExpAcquireResource*Lite / ExpWaitForResource): the waiter fields point at a circular
  list of _KWAIT_CHAIN_ENTRY records on the waiters' own stacks, each waiter blocks on the
  event inside its record, and the waiter counts are still kept.
"""
from .memory import TICK_100NS

RESOURCE_OWNED_EXCLUSIVE = 0x80            # ERESOURCE.Flag, ResourceOwnedExclusive
FIRST_WAIT_100NS = 500 * 10000             # ExpWaitForResource: the first wait times out after 0.5 s
EXP_TIMEOUT_100NS = 4 * 10000000           # ExpTimeout (ExpResourceInitialization): 4 s, every re-wait

#: routines on a waiter's stack that acquire an ERESOURCE (pykd_ext/SEMANTICS.md; all reach
#: ExpWaitForResource); the builder keeps the resource's address in the first one it finds
ACQUIRE_ROUTINES = (
    "nt!ExpWaitForResource", "nt!ExAcquireResourceExclusiveLite", "nt!ExAcquireResourceSharedLite",
    "nt!ExpAcquireResourceExclusiveLite", "nt!ExpAcquireResourceSharedLite",
    "nt!ExAcquireSharedStarveExclusive", "nt!ExpAcquireSharedStarveExclusive",
    "nt!ExAcquireSharedWaitForExclusive", "nt!ExEnterCriticalRegionAndAcquireResourceExclusive",
    "nt!ExEnterCriticalRegionAndAcquireResourceShared",
    "nt!ExEnterCriticalRegionAndAcquireSharedWaitForExclusive", "nt!ExAcquireFastResourceExclusive",
    "nt!ExAcquireFastResourceShared", "nt!ExEnterPriorityRegionAndAcquireResourceExclusive",
    "nt!ExEnterPriorityRegionAndAcquireResourceShared")


def resource_wait_slice(total_100ns):
    """How long the current KeWaitForSingleObject of a resource waiter has lasted after
    `total_100ns` of waiting: ExpWaitForResource waits 0.5 s, then re-waits with ExpTimeout
    (4 s) after every time-out, and each wait resets KTHREAD.WaitTime (WRK/ReactOS
    ExpWaitForResource; ReactOS ke_x.h sets WaitTime in every wait)."""
    if total_100ns <= FIRST_WAIT_100NS:
        return total_100ns
    return (total_100ns - FIRST_WAIT_100NS) % EXP_TIMEOUT_100NS


class ResourcesMixin(object):
    # -- executive resources -------------------------------------------------------------------

    def eresource(self, address=None, name=None):
        """ExInitializeResourceLite: an initialised ERESOURCE (zeroed, then linked at the tail of
        nt!ExpSystemResourcesList): in pool, at `address`, or as global `name` (module!Name)."""
        if name is not None:
            a = self.global_(name, self.size("_ERESOURCE"))
        elif address is not None:
            a = address
        else:
            a = self.alloc(self.size("_ERESOURCE"))
        self.mem.map(a, self.size("_ERESOURCE"))
        self.list_insert_tail(self.resource_head, a + self.off("_ERESOURCE", "SystemResourcesList"))
        return a

    def fast_eresource(self, address=None, name=None):
        """ExInitializeFastResource (newer Windows 10/11; decompiled ExInitializeFastResource,
        bug check 0x1C6 FAST_ERESOURCE_PRECONDITION_VIOLATION): Flag bit 0 set and the
        OwnerEntry bytes (+0x30) turned into an empty list head; still on
        nt!ExpSystemResourcesList."""
        a = self.eresource(address=address, name=name)
        self.put("_ERESOURCE", a, Flag=self._res(a, "Flag") | 0x1)
        self.list_init(a + self.off("_ERESOURCE", "OwnerEntry"))
        return a

    def _res(self, r, field):
        off, f = self._resolve("_ERESOURCE", field)
        return int.from_bytes(self.mem.read(r + off, f.size), "little")

    def _owner_entry(self, entry):
        """(OwnerThread, OwnerCount) of the _OWNER_ENTRY at `entry`."""
        thread = self._u64(entry + self.off("_OWNER_ENTRY", "OwnerThread"))
        off, f = self._resolve("_OWNER_ENTRY", "OwnerCount")
        raw = int.from_bytes(self.mem.read(entry + off, f.size), "little")
        if f.bit_length is not None:
            raw = (raw >> f.bit_position) & ((1 << f.bit_length) - 1)
        return thread, raw

    def _set_owner(self, entry, thread, count):
        self.put("_OWNER_ENTRY", entry, OwnerThread=thread, OwnerCount=count)

    def _table(self, r):
        """[(entry address)] of the owner table's entries 1.. (entry 0 holds TableSize)."""
        table = self._res(r, "OwnerTable")
        if not table:
            return []
        osz = self.size("_OWNER_ENTRY")
        size = self._u32(table + self.off("_OWNER_ENTRY", "TableSize"))
        return [table + i * osz for i in range(1, size)]

    def _expand_owner_table(self, r):
        """ExpExpandResourceOwnerTable: a new table of 3 entries, or the old one plus 4, the
        old entries copied, entry 0's TableSize set, OwnerTable pointed at it."""
        old = self._res(r, "OwnerTable")
        osz = self.size("_OWNER_ENTRY")
        old_size = self._u32(old + self.off("_OWNER_ENTRY", "TableSize")) if old else 0
        new_size = old_size + 4 if old else 3
        table = self.alloc(new_size * osz)
        if old:
            self.mem.write(table, self.mem.read(old, old_size * osz))
        self.put("_OWNER_ENTRY", table, TableSize=new_size)
        self.put("_ERESOURCE", r, OwnerTable=table)

    def _find_free_entry(self, r, first_eligible):
        """ExpFindEntryForThread / ExpFindFreeEntry: OwnerEntry when it is free and eligible,
        else the first free table entry, growing the table when it is full."""
        owner_entry = r + self.off("_ERESOURCE", "OwnerEntry")
        if first_eligible and self._owner_entry(owner_entry)[0] == 0:
            return owner_entry
        while True:
            for e in self._table(r):
                if self._owner_entry(e)[0] == 0:
                    return e
            self._expand_owner_table(r)

    def _entry_of(self, r, thread):
        for e in [r + self.off("_ERESOURCE", "OwnerEntry")] + self._table(r):
            if self._owner_entry(e)[0] == thread:
                return e
        return None

    def _activate(self, r):
        """ActiveEntries + 1; ActiveCount goes 0 -> 1 with the first entry."""
        entries = self._res(r, "ActiveEntries") if self.has("_ERESOURCE", "ActiveEntries") else 0
        if self.has("_ERESOURCE", "ActiveEntries"):
            self.put("_ERESOURCE", r, ActiveEntries=entries + 1)
        self.put("_ERESOURCE", r, ActiveCount=1)

    def acquire_resource(self, r, thread, exclusive=True):
        """Grant `r` to `thread` (a KTHREAD, or an owner value such as an
        ExSetResourceOwnerPointer one) without a wait.

        exclusive (ExAcquireResourceExclusiveLite on a free resource, or a recursive acquire by
        the exclusive owner): Flag |= ResourceOwnedExclusive, ActiveEntries = ActiveCount = 1,
        OwnerEntry = {thread, 1}; a recursive acquire adds 1 to OwnerCount.
        shared (ExAcquireResourceSharedLite when no exclusive owner or waiter stands in the
        way): the thread's own entry gets OwnerCount + 1, else OwnerEntry if free, else a free
        owner-table entry (the table grows as ExpExpandResourceOwnerTable grows it), with
        ActiveEntries + 1."""
        if exclusive:
            if self._res(r, "Flag") & RESOURCE_OWNED_EXCLUSIVE and \
                    self._res(r, "OwnerEntry.OwnerThread") == thread:
                e = r + self.off("_ERESOURCE", "OwnerEntry")
                self._set_owner(e, thread, self._owner_entry(e)[1] + 1)
                return
            self.put("_ERESOURCE", r, Flag=self._res(r, "Flag") | RESOURCE_OWNED_EXCLUSIVE)
            if self.has("_ERESOURCE", "ActiveEntries"):
                self.put("_ERESOURCE", r, ActiveEntries=1)
            self.put("_ERESOURCE", r, ActiveCount=1)
            self._set_owner(r + self.off("_ERESOURCE", "OwnerEntry"), thread, 1)
            return
        mine = self._entry_of(r, thread)
        if mine is not None:
            self._set_owner(mine, thread, self._owner_entry(mine)[1] + 1)
            return
        e = self._find_free_entry(r, first_eligible=True)
        self._set_owner(e, thread, 1)
        self._activate(r)

    def wait_resource(self, thread, r, exclusive=True, waited_ticks=None):
        """Block `thread` on ERESOURCE `r` as its build's kernel does, after it asked for it in
        ExAcquireResourceExclusiveLite / ExAcquireResourceSharedLite and could not have it.

        Shared (ExAcquireResourceSharedLite / ExpFindEntryForThread / ExpFindFreeEntry): a
        shared acquirer waits only behind an exclusive owner or waiter (else it is granted: a
        ValueError here), and is written into an owner entry BEFORE it blocks — OwnerThread =
        thread, OwnerCount = 1 (OwnerEntry is then ineligible) — then NumberOfSharedWaiters + 1;
        ExAcquireSharedWaitForExclusive behind an exclusive waiter only counts itself.  Exclusive: only
        NumberOfExclusiveWaiters + 1.  Then ExpWaitForResource: ContentionCount + 1 and a
        KeWaitForSingleObject (WrResource) with a 0.5 s, then 4 s, time-out, re-waiting on every
        time-out; KTHREAD.WaitTime is the start of the current wait only.

        What the thread waits on: where the layout types ExclusiveWaiters/SharedWaiters as
        KEVENT/KSEMAPHORE pointers (7, 8.1) the resource's own event/semaphore, allocated on
        first need (ExpAllocateExclusiveWaiterEvent: a SynchronizationEvent;
        ExpAllocateSharedWaiterSemaphore: a semaphore of limit MAXLONG).  Where they are untyped
        (10 and later) a _KWAIT_CHAIN_ENTRY {ListEntry, Thread, Event} on the waiter's own stack
        (in its ExpWaitForResource frame, else its innermost acquire frame), linked at the tail
        of the circular list the waiter field points at.

        `waited_ticks`: how long the thread has really waited (default: what thread() was told);
        WaitTime is left at the start of the current 0.5 s / 4 s slice of it.  The resource's
        address is also left in the acquire frame (a saved register), where a stack scan finds
        it, when the stack has an acquire routine.
        """
        field = "ExclusiveWaiters" if exclusive else "SharedWaiters"
        count = "NumberOfExclusiveWaiters" if exclusive else "NumberOfSharedWaiters"
        typed = self.layouts.layout("_ERESOURCE").field(field).type != "ptr:void"
        if not exclusive:
            owned_exclusive = bool(self._res(r, "Flag") & RESOURCE_OWNED_EXCLUSIVE)
            exclusive_waiting = self._res(r, "NumberOfExclusiveWaiters") != 0
            if not owned_exclusive and not exclusive_waiting:
                raise ValueError("ERESOURCE 0x%x: ExAcquireResourceSharedLite grants a resource that is free "
                                 "or only shared-owned with no exclusive waiter; a shared wait needs an "
                                 "exclusive owner or waiter" % r)
            frames = {spec.split("+")[0].lower() for spec, _ in self.threads[thread].frames}
            if owned_exclusive or not frames & {"nt!exacquiresharedwaitforexclusive",
                                                "nt!expacquiresharedwaitforexclusive"}:
                e = self._find_free_entry(r, first_eligible=False)
                self._set_owner(e, thread, 1)
            # else ExAcquireSharedWaitForExclusive behind an exclusive waiter: only the count;
            # it takes an entry after it wakes (ReactOS ExAcquireSharedWaitForExclusive)
        self.put("_ERESOURCE", r, **{count: self._res(r, count) + 1})
        self.put("_ERESOURCE", r, ContentionCount=self._res(r, "ContentionCount") + 1)
        frame = self.first_frame(thread, ACQUIRE_ROUTINES)
        if frame is not None:
            acquirer = next((s.split("+")[0] for s, _ in self.threads[thread].frames
                             if s.lower().startswith("nt!exacquire") or s.lower().startswith("nt!expacquire")
                             or s.lower().startswith("nt!exenter")), frame[0])
            self.stack_word(thread, acquirer, 0x30, r)
        reason = "WrResource" if "WrResource" in self.layouts.enum("_KWAIT_REASON") else "Executive"
        if typed:
            obj = self._res(r, field)
            if not obj:
                obj = self.event(notification=False) if exclusive else self.semaphore()
                self.put("_ERESOURCE", r, **{field: obj})
        else:
            entry = self._chain_entry_address(thread, frame)
            if self.has("_KWAIT_CHAIN_ENTRY", "Thread"):     # the 0x28-byte shape has none
                self.put("_KWAIT_CHAIN_ENTRY", entry, Thread=thread)
            obj = self.event(notification=False, address=entry + self.off("_KWAIT_CHAIN_ENTRY", "Event"))
            links = entry + self.off("_KWAIT_CHAIN_ENTRY", "ListEntry")
            head = self._res(r, field)
            if head:
                self.list_insert_tail(head, links)          # the ring's tail is head's Blink
            else:
                self.list_init(links)
                self.put("_ERESOURCE", r, **{field: links})
        self.wait_on(thread, [obj], reason, timeout=True)
        self._resource_wait_time(thread, waited_ticks)

    def _chain_entry_address(self, thread, frame):
        """A _KWAIT_CHAIN_ENTRY's place: a local of the thread's ExpWaitForResource frame (or
        of its innermost acquire frame), else just above its saved kernel stack pointer."""
        info = self.threads[thread]
        for spec, sp in info.frames:
            if spec.split("+")[0].lower() == "nt!expwaitforresource":
                return sp + 0x10                       # 0x30 bytes below the return address at sp + 0x40
        if frame is not None:
            return frame[1] + 0x10
        ks = self._u64(thread + self.off("_KTHREAD", "KernelStack"))
        return ks + 0x100

    def _resource_wait_time(self, thread, waited_ticks):
        wt_off = self.off("_KTHREAD", "WaitTime")
        if waited_ticks is None:
            waited_ticks = (self.tick - self._u32(thread + wt_off)) & 0xffffffff
        self.waited[thread] = waited_ticks
        slice_100ns = resource_wait_slice(waited_ticks * TICK_100NS)
        self.u32(thread + wt_off, (self.tick - slice_100ns // TICK_100NS) & 0xffffffff)

    def resource_timeout_break(self, thread, cpu):
        """A resource waiter whose ExpWaitForResource reached its time-out count breaks into the
        debugger from inside that routine (ReactOS ExpWaitForResource: after
        ExpResourceTimeoutCount time-outs it dumps the resource and calls DbgBreakPoint): its
        wait has ended (KTHREAD.WaitReason still WrResource, its waiter registration kept) and
        it runs on processor `cpu` (State Running, that PRCB's CurrentThread)."""
        self.put("_KTHREAD", thread, State=self.enum("_KTHREAD_STATE", "Running"))
        self.set_current(cpu, thread)
