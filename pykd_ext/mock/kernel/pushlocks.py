"""Push locks: acquire without contention, wait, and the AutoBoost lock entries — as the
kernel's routines do.

Sources: ReactOS ntoskrnl/ex/pushlock.c (ExfAcquirePushLockExclusive, ExfAcquirePushLockShared,
ExpOptimizePushLockList — the NT 5.x algorithm; Windows 8 and later enter it through
ExfAcquirePushLockExclusiveEx / ExfAcquirePushLockSharedEx and keep the same lock word and
wait-block chain); the EX_PUSH_LOCK_WAIT_BLOCK layout of public PDB-derived x64 type dumps
(0x40 bytes).  AutoBoost lock entries (_KLOCK_ENTRY, Windows 8 and later): what the kernel's
KeAbPreAcquire / KeAbPostAcquire leave — LockUnsafe = the lock, the Acquired flag once held,
the Waiting flag while waited for — from the symbols' field names and the bug check 0x162 /
0x153 documentation; no public source gives their code, so the builder writes only those
fields.  Where Windows 10 keeps the array KTHREAD.LockEntries points at is not public: the
builder allocates it beside the thread.
"""
from ...kernel.pushlocks import FLAG_EXCLUSIVE, FLAG_WAIT, LOCK_ENTRIES, LOCKED, MULTIPLE_SHARED, \
    PTR_BITS, PUSH_LOCK_ACQUIRERS, SHARE_SHIFT, WAITING, WAKING

class PushLocksMixin(object):

    def push_lock(self, address=None, name=None):
        """ExInitializePushLock: an EX_PUSH_LOCK of value 0, in pool, at `address`, or as global
        `name` (module!Name)."""
        if name is not None:
            return self.global_(name, 8)
        if address is not None:
            self.mem.map(address, 8)
            self.u64(address, 0)
            return address
        return self.alloc(8, align=8)

    def _push_word(self, lock):
        return self._u64(lock)

    def acquire_push_lock(self, lock, thread, exclusive=True):
        """ExfAcquirePushLockExclusive / ExfAcquirePushLockShared when nothing stands in the way
        (ReactOS pushlock.c): exclusive sets Locked on a free lock; shared adds one to the share
        count (above bit 4) and sets Locked, while nobody waits.  On Windows 8 and later the
        acquisition is also recorded in one of the thread's AutoBoost lock entries."""
        old = self._push_word(lock)
        if exclusive:
            if old & LOCKED:
                raise ValueError("push lock 0x%x is held: exclusive acquire would wait" % lock)
            self.u64(lock, old | LOCKED)
        else:
            if old & WAITING or (old & LOCKED and not old >> SHARE_SHIFT):
                raise ValueError("push lock 0x%x is held exclusive or waited for: shared acquire would wait" % lock)
            self.u64(lock, (((old >> SHARE_SHIFT) + 1) << SHARE_SHIFT) | (old & PTR_BITS) | LOCKED)
        self._lock_entry(thread, lock, acquired=True)

    def wait_push_lock(self, thread, lock, exclusive=True):
        """A push-lock acquire that must wait (ReactOS ExfAcquirePushLockExclusive /
        ExfAcquirePushLockShared, contended path), then the wait:
        - an EX_PUSH_LOCK_WAIT_BLOCK on the waiter's stack (in its acquire frame): Flags =
          EXCLUSIVE|WAIT (exclusive) or WAIT (shared), Previous = NULL, ShareCount = 0;
        - first waiter: Last = itself; an exclusive one keeps the share count of a lock held by
          more than one sharer (ShareCount, and MultipleShared in the word); the word becomes
          the block's address | Waiting | Locked (exclusive) or | the old low bits (shared);
        - later waiter: Last = NULL, Next = the newest block so far; the word becomes its address
          | Waking | Waiting | Locked (exclusive: | MultipleShared kept; shared: Locked and
          MultipleShared kept), and, Waking not having been set, ExpOptimizePushLockList runs:
          Previous links filled from the newest to the oldest, the newest block's Last = the
          oldest, Waking cleared;
        - KeInitializeGate(&WakeGate), then KeWaitForGate(WrPushLock): the thread waits on the
          gate at the block's start, the block's WAIT flag still set.
        Windows 8 and later: the thread's AutoBoost entry for the lock says it waits."""
        old = self._push_word(lock)
        frame = self.first_frame(thread, PUSH_LOCK_ACQUIRERS)
        # the block is a local of the acquire frame (its 0x40 bytes end at the return address);
        # the lock's address, the routine's first argument, sits in its home slot at the top
        # of the caller's frame (x64 calling convention)
        wb = frame[1] if frame else self._u64(thread + self.off("_KTHREAD", "KernelStack")) + 0x100
        wb = (wb + 0xf) & ~0xf
        lay = "_EX_PUSH_LOCK_WAIT_BLOCK"
        self.mem.map(wb, self.size(lay))
        self.put(lay, wb, Flags=(FLAG_EXCLUSIVE | FLAG_WAIT) if exclusive else FLAG_WAIT, Previous=0, ShareCount=0)
        need_wake = False
        if old & WAITING:
            self.put(lay, wb, Last=0, Next=old & ~PTR_BITS)
            if exclusive:
                new = (old & MULTIPLE_SHARED) | LOCKED | WAKING | WAITING | wb
            else:
                new = (old & (MULTIPLE_SHARED | LOCKED)) | WAKING | WAITING | wb
            need_wake = not old & WAKING
        else:
            self.put(lay, wb, Last=wb)
            shared = old >> SHARE_SHIFT
            if exclusive:
                if shared > 1:
                    self.put(lay, wb, ShareCount=shared)
                    new = MULTIPLE_SHARED | LOCKED | WAITING | wb
                else:
                    new = LOCKED | WAITING | wb
            else:
                new = (old & PTR_BITS) | WAITING | wb
        self.u64(lock, new)
        if need_wake:
            self._optimize_push_lock_list(lock)
        if frame is not None:
            self.u64(frame[1] + 0x48, lock)          # the caller's sp: rcx's home slot
        self.put("_KGATE", wb, Header__Type=self.enum("_KOBJECTS", "GateObject"), Header__Size=6)
        self.list_init(wb + self.off("_DISPATCHER_HEADER", "WaitListHead"))
        self.wait_on(thread, [wb], "WrPushLock")
        self._lock_entry(thread, lock, waiting=True)
        return wb

    def _optimize_push_lock_list(self, lock):
        """ExpOptimizePushLockList while the lock is held: walk Next from the newest block to
        the first one with Last set, filling each next block's Previous; the newest block's
        Last = that one; then clear Waking."""
        lay = "_EX_PUSH_LOCK_WAIT_BLOCK"
        word = self._push_word(lock)
        first = wb = word & ~PTR_BITS
        for _ in range(4096):
            last = self._u64(wb + self.off(lay, "Last"))
            if last:
                self.put(lay, first, Last=last)
                break
            nxt = self._u64(wb + self.off(lay, "Next"))
            self.put(lay, nxt, Previous=wb)
            wb = nxt
        self.u64(lock, word & ~WAKING)

    def _lock_entries_base(self, thread):
        """Where the thread's _KLOCK_ENTRY array is: inline (8.1) or behind the LockEntries
        pointer (10, allocated here on first use); None where KTHREAD has no LockEntries."""
        if not self.has("_KTHREAD", "LockEntries") or not self.layouts.has_type("_KLOCK_ENTRY"):
            return None
        f = self.layouts.layout("_KTHREAD").field("LockEntries")
        if not f.type.startswith("ptr:"):
            return thread + f.offset
        base = self._u64(thread + f.offset)
        if not base:
            base = self.alloc(LOCK_ENTRIES * self.size("_KLOCK_ENTRY"))
            self.put("_KTHREAD", thread, LockEntries=base)
        return base

    def _lock_entry(self, thread, lock, acquired=False, waiting=False):
        """The thread's AutoBoost entry for `lock` (its own, or a free one): LockUnsafe = the
        lock; Acquired / Waiting flags, by whichever names the build's _KLOCK_ENTRY has."""
        base = self._lock_entries_base(thread)
        if base is None:
            return None
        size = self.size("_KLOCK_ENTRY")
        off = self.off("_KLOCK_ENTRY", "LockUnsafe")
        entry = None
        for i in range(LOCK_ENTRIES):
            a = base + i * size
            cur = self._u64(a + off) & ~0x3
            if cur == lock or (entry is None and cur == 0):
                entry = a
                if cur == lock:
                    break
        if entry is None:
            return None                                # all six in use: not tracked
        self.put("_KLOCK_ENTRY", entry, LockUnsafe=lock)
        for names, on in ((("AcquiredBit", "AcquiredByte"), acquired), (("WaitingBit", "WaitingByte"), waiting)):
            if not on:
                continue
            name = next((n for n in names if self.has("_KLOCK_ENTRY", n)), None)
            if name is not None:
                self.put("_KLOCK_ENTRY", entry, **{name: 1})
            elif self.has("_KLOCK_ENTRY", "WaitingAndBusyByte"):   # 8.1: LockState.Waiting, bit 0
                self.put("_KLOCK_ENTRY", entry, LockUnsafe=lock | 1)
        return entry
