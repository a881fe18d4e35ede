"""Spin locks: the lock word of a plain KSPIN_LOCK, the queue of an in-stack queued spin lock,
and the numbered queued spin locks of each processor (KPRCB.LockQueue[]).

What the values mean (pykd_ext/SEMANTICS.md, "Spin locks"):
- A plain KSPIN_LOCK is 0 when free.  x64 free builds acquire it with
  InterlockedBitTestAndSet64(SpinLock, 0): a held lock is 1; checked builds store
  KeGetCurrentThread() + 1, the one case where the word names its owner (WRK
  base/ntos/ke/amd64/spinlock.c KxWaitForSpinLockAndAcquire).  A spinner spins in
  KxWaitForSpinLockAndAcquire while the word is nonzero.
- A queued spin lock's word is 0 when free, else the address of the newest (tail)
  KSPIN_LOCK_QUEUE {Next, Lock}; an in-stack one lives at the start of a KLOCK_QUEUE_HANDLE
  {LockQueue, OldIrql at +0x10} on the acquirer's stack (WRK amd64 queuelock.c
  KeAcquireInStackQueuedSpinLock, KxAcquireQueuedSpinLock: Lock = SpinLock, Next = NULL,
  xchg the lock word with the entry; a previous tail means wait: KxWaitForLockOwnerShip
  sets LOCK_QUEUE_WAIT (1) in the entry's Lock, links it as the old tail's Next, and spins
  while the bit is set; the release XORs the bit off the next entry).  The low bits of Lock
  are LOCK_QUEUE_WAIT (1) and LOCK_QUEUE_OWNER (2) (wdm.h).  x86 marks the holder's entry
  with LOCK_QUEUE_OWNER (WRK i386 spinlock.asm KeAcquireQueuedSpinLockAtDpcLevel,
  KeReleaseQueuedSpinLockFromDpcLevel); amd64 sets no owner bit: the holder is the head of
  the queue, the entry that does not wait and whose Next chain leads to the tail (or that is
  the tail).  Both are the kernel's own record.
- Numbered queued locks: KPRCB.LockQueue[n].Lock = &the global lock (&KiDispatcherLock,
  &MmPfnLock, ...) set at boot (WRK KiInitQueuedSpinLocks); KeAcquireQueuedSpinLock(n)
  queues that processor's entry the same way (WRK amd64 queuelock.c).  `!qlocks` reads these.
"""
import struct

from ..errors import FieldNotFound, MemoryFault, TypeNotFound
from .views import Struct

LOCK_QUEUE_WAIT, LOCK_QUEUE_OWNER = 0x1, 0x2
ENTRY_SIZE = 0x10            # KSPIN_LOCK_QUEUE on x64
HANDLE_SIZE = 0x18           # KLOCK_QUEUE_HANDLE: LockQueue, OldIrql at +0x10 (WRK ksamd64: LqhOldIrql)
DISPATCH_LEVEL = 2

#: routines a processor spinning on a plain spin lock shows (its lock: their first argument)
PLAIN_ACQUIRERS = (
    "nt!KxWaitForSpinLockAndAcquire", "nt!KeAcquireSpinLockRaiseToDpc", "nt!KeAcquireSpinLockAtDpcLevel",
    "nt!KefAcquireSpinLockAtDpcLevel", "nt!KfAcquireSpinLock", "hal!KfAcquireSpinLock", "nt!KxAcquireSpinLock",
    "nt!KiAcquireSpinLock", "nt!KeAcquireSpinLockForDpc", "nt!KeAcquireInterruptSpinLock",
    "nt!KiAcquireSpinLockInstrumented", "nt!KeAcquireSpinLockRaiseToSynch")
#: routines a processor waiting for a queued spin lock shows (first argument: the lock, or for
#: KxWaitForLockOwnerShip / KeAcquireQueuedSpinLockAtDpcLevel the processor's queue entry)
QUEUED_ACQUIRERS = (
    "nt!KxWaitForLockOwnerShip", "nt!KxAcquireQueuedSpinLock", "nt!KeAcquireInStackQueuedSpinLock",
    "nt!KeAcquireInStackQueuedSpinLockAtDpcLevel", "nt!KeAcquireInStackQueuedSpinLockRaiseToSynch",
    "nt!KeAcquireInStackQueuedSpinLockForDpc", "nt!KeAcquireQueuedSpinLock",
    "nt!KeAcquireQueuedSpinLockRaiseToSynch", "nt!KeAcquireQueuedSpinLockAtDpcLevel",
    "hal!KeAcquireQueuedSpinLock", "hal!KeAcquireQueuedSpinLockRaiseToSynch",
    "hal!KeAcquireInStackQueuedSpinLock")
#: what a spinner calls while it spins: the top of its stack, above an acquire frame
YIELD_FRAMES = ("nt!KeYieldProcessorEx", "nt!HvlNotifyLongSpinWait", "nt!KiCheckForFreezeExecution")

def kernel_pointer(w):
    return not w & 7 and w >> 47 == 0x1ffff


def read_u64(target, address):
    return struct.unpack("<Q", target.read(address, 8))[0]


def read_entry(target, address):
    """(Next, Lock) of the KSPIN_LOCK_QUEUE at `address`."""
    return struct.unpack("<QQ", target.read(address, ENTRY_SIZE))


class SpinWord(object):
    """A decoded lock word.  kind: free, plain (held: bit 0), queued (the tail entry's Lock
    names this lock), unknown (nonzero, neither)."""
    __slots__ = ("address", "value", "kind", "tail", "thread")

    def __init__(self, address, value, kind, tail=0, thread=0):
        self.address, self.value, self.kind, self.tail, self.thread = address, value, kind, tail, thread

    def describe(self):
        if self.kind == "free":
            return "free"
        if self.kind == "queued":
            return "held, tail queue entry 0x%x" % self.tail
        if self.kind == "plain":
            return "held (0x%x%s)" % (self.value, ", KeGetCurrentThread()+1 of a checked build" if self.thread else "")
        return "0x%x" % self.value


def decode_word(target, address, threads=()):
    """The lock word at `address` read as a spin lock (MemoryFault if unreadable).  `threads`:
    thread addresses, to recognise a checked build's thread + 1."""
    v = read_u64(target, address)
    if not v:
        return SpinWord(address, v, "free")
    if kernel_pointer(v):
        try:
            _, lk = read_entry(target, v)
        except MemoryFault:
            lk = None
        if lk is not None and lk & ~3 == address:
            return SpinWord(address, v, "queued", tail=v)
    if v & 1:
        owner = v & ~1
        if v == 1:
            return SpinWord(address, v, "plain")
        if owner in threads:
            return SpinWord(address, v, "plain", thread=owner)
    return SpinWord(address, v, "unknown")


class QueueEntry(object):
    __slots__ = ("address", "next", "lock", "waiting", "owner_bit")

    def __init__(self, address, nxt, lock):
        self.address, self.next = address, nxt
        self.lock = lock & ~3
        self.waiting = bool(lock & LOCK_QUEUE_WAIT)
        self.owner_bit = bool(lock & LOCK_QUEUE_OWNER)


def find_entries(target, lo, hi, locks):
    """KSPIN_LOCK_QUEUE entries in [lo, hi) (8-aligned) whose Lock names one of `locks`."""
    raw = target.read(lo, hi - lo)
    words = struct.unpack("<%dQ" % (len(raw) // 8), raw[:len(raw) // 8 * 8])
    out = []
    for i in range(len(words) - 1):
        if words[i + 1] & ~3 in locks and (not words[i] or kernel_pointer(words[i])):
            out.append(QueueEntry(lo + 8 * i, words[i], words[i + 1]))
    return out


def queue_holder(word, entries):
    """(holder entry, evidence) of a queued lock from the entries found: the one with
    LOCK_QUEUE_OWNER (x86), else the non-waiting head whose Next chain reaches the tail
    (amd64); (None, None) when no found entry is either."""
    mine = {e.address: e for e in entries if e.lock == word.address}
    for e in mine.values():
        if e.owner_bit:
            return e, "queue-owner-bit"
    for e in mine.values():
        if e.waiting:
            continue
        seen, cur = set(), e
        while cur is not None and cur.address not in seen:
            if cur.address == word.tail:
                return e, "queue-head"
            seen.add(cur.address)
            cur = mine.get(cur.next)
    return None, None


def lock_queue(target, prcb):
    """[(number, entry address, QueueEntry)] of the PRCB's numbered queued spin locks."""
    lay = target.layouts().layout("_KPRCB")
    f = lay.field("LockQueue")
    base = prcb + f.offset
    n = f.size // ENTRY_SIZE
    raw = target.read(base, n * ENTRY_SIZE)
    out = []
    for i in range(n):
        nxt, lk = struct.unpack_from("<QQ", raw, i * ENTRY_SIZE)
        if lk & ~3:
            out.append((i, base + i * ENTRY_SIZE, QueueEntry(base + i * ENTRY_SIZE, nxt, lk)))
    return out


def saved_irql(target, prcb):
    """KPRCB.DebuggerSavedIRQL as it stands, or None where the build has no such field.  Only the
    processor that bug checked or broke into the debugger wrote it; on every other processor it
    is stale: read it only through analysis/dpc.py recorded_irql, which applies that rule."""
    try:
        v = Struct(target, "_KPRCB", prcb)
        if not v.has("DebuggerSavedIRQL"):
            return None
        return v["DebuggerSavedIRQL"]
    except (FieldNotFound, TypeNotFound):
        return None
