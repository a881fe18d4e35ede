"""Spin locks: plain KSPIN_LOCKs, in-stack queued spin locks and the numbered queued spin locks
of KPRCB.LockQueue[] -- as the x64 kernel's routines lay them out.

Sources: WRK base/ntos/ke/amd64/spinlock.c (KxWaitForSpinLockAndAcquire: a free build takes a
plain lock with InterlockedBitTestAndSet64(SpinLock, 0), a checked build stores
KeGetCurrentThread() + 1) and base/ntos/ke/amd64/queuelock.c (KeAcquireInStackQueuedSpinLock,
KeAcquireQueuedSpinLock, KxAcquireQueuedSpinLock, KxWaitForLockOwnerShip: no owner bit on
amd64); WRK KiInitQueuedSpinLocks (KPRCB.LockQueue[n].Lock = &the global lock); wdm.h
(LOCK_QUEUE_WAIT 1, LOCK_QUEUE_OWNER 2; KLOCK_QUEUE_HANDLE {KSPIN_LOCK_QUEUE LockQueue;
KIRQL OldIrql}, OldIrql at +0x10 on x64).
"""
from ...kernel.spinlocks import ENTRY_SIZE, LOCK_QUEUE_WAIT, PLAIN_ACQUIRERS, QUEUED_ACQUIRERS

ACQUIRERS = {n.lower() for n in PLAIN_ACQUIRERS + QUEUED_ACQUIRERS}


class SpinLocksMixin(object):

    def spin_lock(self, name=None, address=None):
        """KeInitializeSpinLock: a KSPIN_LOCK of value 0, in pool, at `address`, or as global
        `name` (module!Name)."""
        if name is not None:
            return self.global_(name, 8, align=8)
        if address is not None:
            self.mem.map(address, 8)
            self.u64(address, 0)
            return address
        return self.alloc(8, align=8)

    def hold_spin_lock(self, lock, thread=None, checked=False):
        """KeAcquireSpinLock on a free plain lock (WRK amd64 spinlock.c): a free build sets bit
        0 -- the word becomes 1 and names nobody; `checked=True` plays a checked build, whose
        word is the owner KTHREAD + 1."""
        if self._u64(lock):
            raise ValueError("spin lock 0x%x is held: the acquire would spin" % lock)
        self.u64(lock, (thread + 1) if checked else 1)

    def _acquire_frames(self, thread):
        """(index of the outermost spin-lock acquire frame, [(spec, sp)]) of `thread`."""
        frames = self.threads[thread].frames
        idx = [i for i, (spec, _) in enumerate(frames) if spec.split("+")[0].lower() in ACQUIRERS]
        return (idx[-1] if idx else None), frames

    def spin_on_spin_lock(self, thread, lock):
        """A processor spinning in KxWaitForSpinLockAndAcquire (WRK amd64 spinlock.c): it only
        reads the word, so nothing in the lock changes; the lock's address, the acquire
        routine's first argument, is in rcx's home slot at the top of the caller's frame."""
        last, frames = self._acquire_frames(thread)
        if last is None or last + 1 >= len(frames):
            raise ValueError("thread 0x%x has no spin-lock acquire frame with a caller" % thread)
        if not self._u64(lock):
            raise ValueError("spin lock 0x%x is free: nothing would spin" % lock)
        self.u64(frames[last + 1][1], lock)

    def acquire_in_stack_queued_spin_lock(self, thread, lock, frame=None, irql=0):
        """KeAcquireInStackQueuedSpinLock (WRK amd64 queuelock.c): the KLOCK_QUEUE_HANDLE is a
        local of the caller (`frame`, module!Func; by default the caller of the thread's acquire
        frame) on the acquirer's stack: LockQueue.Lock = lock, LockQueue.Next = NULL,
        OldIrql; then KxAcquireQueuedSpinLock: xchg the lock word with &LockQueue; a previous
        tail means KxWaitForLockOwnerShip: LockQueue.Lock |= LOCK_QUEUE_WAIT, old tail's Next =
        &LockQueue, spin while the bit is set.  amd64 sets no LOCK_QUEUE_OWNER bit.  The lock's
        address and the handle's are kept in the caller's rcx/rdx home slots when the thread
        is still in the acquire routine.  Returns the handle's address."""
        last, frames = self._acquire_frames(thread)
        if frame is None:
            if last is None or last + 1 >= len(frames):
                raise ValueError("thread 0x%x: no acquire frame; name the frame that holds the handle" % thread)
            caller_sp = frames[last + 1][1]
        else:
            caller_sp = self.frame_sp(thread, frame)
        handle = caller_sp + 0x20                      # past the four home slots
        self.u64(handle, 0)                            # LockQueue.Next
        self.u64(handle + 8, lock)                     # LockQueue.Lock
        self.u8(handle + 0x10, irql)                   # OldIrql
        tail = self._u64(lock)
        self.u64(lock, handle)                         # InterlockedExchangePointer(SpinLock, LockQueue)
        if frame is None:
            self.u64(caller_sp, lock)                  # rcx home: SpinLock
            self.u64(caller_sp + 8, handle)            # rdx home: LockHandle
        if tail:
            self.u64(handle + 8, lock | LOCK_QUEUE_WAIT)
            self.u64(tail, handle)                     # TailQueue->Next = LockQueue
        return handle

    def _lock_queue_entry(self, cpu, number):
        return self._prcb(cpu) + self.off("_KPRCB", "LockQueue") + number * ENTRY_SIZE

    def numbered_queued_lock(self, number, name):
        """KiInitQueuedSpinLocks (WRK): the global lock `name` (nt!Name), and every processor's
        LockQueue[number] = {Next NULL, Lock = &it}.  Processors added later get theirs when they
        first acquire it."""
        g = self.global_(name, 8, align=8)
        for p in self.processors:
            self.u64(self._lock_queue_entry(p["index"], number) + 8, g)
        return g

    def acquire_queued_spin_lock(self, cpu, number, lock):
        """KeAcquireQueuedSpinLock(Number) on processor `cpu` (WRK amd64 queuelock.c): LockQueue =
        &Prcb->LockQueue[Number], SpinLock = LockQueue->Lock, then KxAcquireQueuedSpinLock as
        for an in-stack lock (xchg, link behind the old tail with LOCK_QUEUE_WAIT)."""
        entry = self._lock_queue_entry(cpu, number)
        self.u64(entry, 0)
        self.u64(entry + 8, lock)
        tail = self._u64(lock)
        self.u64(lock, entry)
        if tail:
            self.u64(entry + 8, lock | LOCK_QUEUE_WAIT)
            self.u64(tail, entry)
        return entry
