"""Push locks (EX_PUSH_LOCK): the lock word, the waiters' wait-block chain, and the AutoBoost
lock entries that are the only record of who holds one.

What the values mean (pykd_ext/SEMANTICS.md, "Push locks"):
- The lock word: Locked (bit 0), Waiting (1), Waking (2), MultipleShared (3); without waiters
  the bits above hold the share count; with waiters they hold the address of the newest
  waiter's EX_PUSH_LOCK_WAIT_BLOCK (16-byte aligned) — ReactOS ntoskrnl/ex/pushlock.c,
  `_EX_PUSH_LOCK` in the symbols.
- A waiter builds an EX_PUSH_LOCK_WAIT_BLOCK {WakeGate/WakeEvent, Next, Last, Previous,
  ShareCount, Flags} on its own stack: Flags EXCLUSIVE (1) for an exclusive waiter, WAIT (2)
  while it waits; Next = the waiter queued before it; the first (oldest) waiter's Last points
  at itself; it waits on WakeGate (KeWaitForGate, wait reason WrPushLock) — ReactOS
  ExfAcquirePushLockExclusive / ExfAcquirePushLockShared, ExpOptimizePushLockList (which
  fills Previous and the newest block's Last); the 0x40-byte x64 layout of public PDB-derived
  type dumps.
- No owner is recorded in the lock.  Windows 8 and later track AutoBoost-aware acquisitions in
  the thread's _KLOCK_ENTRY records (KTHREAD.LockEntries: inline on 8.1, a pointer on 10;
  LockUnsafe = the lock, AcquiredByte/AcquiredBit = held, WaitingByte/WaitingBit = waited
  for); bug checks 0x162 and 0x153 confirm the kernel keeps ownership there.  Anything else
  (the lock's address on another thread's stack) is an inference and is said to be one.
"""
from ..errors import FieldNotFound, MemoryFault, TypeNotFound
from .views import Struct

LOCKED, WAITING, WAKING, MULTIPLE_SHARED = 0x1, 0x2, 0x4, 0x8
PTR_BITS = 0xf
SHARE_SHIFT = 4
FLAG_EXCLUSIVE, FLAG_WAIT = 0x1, 0x2       # EX_PUSH_LOCK_WAIT_BLOCK.Flags
MAX_WAITERS = 1024                         # wait blocks followed per lock
LOCK_ENTRIES = 6                           # _KLOCK_ENTRY records per thread on 8.1 and 10

#: routines a push-lock waiter's stack shows (ntoskrnl's, and the filter manager's wrappers);
#: the lock's address is their first argument
PUSH_LOCK_ACQUIRERS = (
    "nt!ExfAcquirePushLockExclusive", "nt!ExfAcquirePushLockShared", "nt!ExfAcquirePushLockExclusiveEx",
    "nt!ExfAcquirePushLockSharedEx", "nt!ExAcquirePushLockExclusiveEx", "nt!ExAcquirePushLockSharedEx",
    "nt!ExpWaitForPushLock", "FLTMGR!FltAcquirePushLockExclusive", "FLTMGR!FltAcquirePushLockShared",
    "FLTMGR!FltAcquirePushLockExclusiveEx", "FLTMGR!FltAcquirePushLockSharedEx")


class PushLockWord(object):
    """A decoded lock word."""
    __slots__ = ("value", "locked", "waiting", "waking", "multiple_shared", "share_count", "newest")

    def __init__(self, value):
        self.value = value
        self.locked = bool(value & LOCKED)
        self.waiting = bool(value & WAITING)
        self.waking = bool(value & WAKING)
        self.multiple_shared = bool(value & MULTIPLE_SHARED)
        self.share_count = None if self.waiting else value >> SHARE_SHIFT
        self.newest = value & ~PTR_BITS if self.waiting else 0

    def describe(self):
        bits = [n for n, b in (("Locked", self.locked), ("Waiting", self.waiting), ("Waking", self.waking),
                               ("MultipleShared", self.multiple_shared)) if b]
        text = "+".join(bits) or "free"
        if self.share_count:
            text += ", %d shared" % self.share_count
        return text


def read_word(target, address):
    raw = target.read(address, 8)
    return PushLockWord(int.from_bytes(raw, "little"))


def wait_chain(target, word, diags, what):
    """[(wait block, exclusive, share count)] newest first, following Next until the oldest
    block (whose Last is itself); cut short (and said) at a loop, a NULL or unreadable link."""
    lay = target.layouts().layout("_EX_PUSH_LOCK_WAIT_BLOCK")
    out, seen, wb = [], set(), word.newest
    while wb and len(out) < MAX_WAITERS:
        if wb in seen:
            diags.add("loop", "%s: wait-block chain loops back to 0x%x" % (what, wb), wb)
            return out, False
        seen.add(wb)
        try:
            v = Struct(target, lay, wb)
            flags, last, nxt = v["Flags"], v["Last"], v["Next"]
            out.append((wb, bool(flags & FLAG_EXCLUSIVE), v["ShareCount"]))
        except MemoryFault as e:
            diags.add("unreadable", "%s: wait block 0x%x is unreadable" % (what, wb), e.address)
            return out, False
        if last == wb:
            return out, True                 # the oldest waiter
        wb = nxt
    if wb:
        diags.add("cap", "%s: more than %d waiters; the rest are not listed" % (what, MAX_WAITERS), wb)
        return out, False
    return out, True                         # Next NULL: the chain ends without its Last mark


def canonical(value):
    """A kernel address from a field whose top and low bits may carry flags (LockUnsafe: bit 63
    InTree, bits 0-1 Waiting/Busy or CrossThreadReleasable/Busy): sign-extended from bit 47."""
    v = value & 0x0000fffffffffffc
    return v | 0xffff000000000000 if v & (1 << 47) else v


class LockEntry(object):
    __slots__ = ("thread", "address", "lock", "acquired", "waiting")

    def __init__(self, thread, address, lock, acquired, waiting):
        self.thread, self.address, self.lock, self.acquired, self.waiting = thread, address, lock, acquired, waiting


def _flag(v, *names):
    """The first of `names` the entry's layout has, as a truth value (bit fields decode to
    their bit, bytes to their value); None when it has none of them."""
    for n in names:
        if v.layout.has(n):
            return bool(v[n])
    return None


def lock_entries(target, thread, diags):
    """The thread's AutoBoost _KLOCK_ENTRY records that name a lock ([] where the build's
    KTHREAD keeps none: 7, and 11 22000 whose KTHREAD has no LockEntries field)."""
    lays = target.layouts()
    klay = lays.layout("_KTHREAD")
    if not klay.has("LockEntries") or not lays.has_type("_KLOCK_ENTRY"):
        return []
    elay = lays.layout("_KLOCK_ENTRY")
    field = klay.field("LockEntries")
    try:
        if field.type.startswith("ptr:"):
            base = thread.view["LockEntries"]
            if not base:
                return []
        else:
            base = thread.address + field.offset
        out = []
        for i in range(LOCK_ENTRIES):
            a = base + i * elay.size
            v = Struct(target, elay, a)
            lock = canonical(v["LockUnsafe"])
            if not lock:
                continue
            waiting = _flag(v, "WaitingBit", "WaitingByte")
            if waiting is None and v.layout.has("WaitingAndBusyByte"):
                waiting = bool(v["LockUnsafe"] & 1)      # 8.1: LockState.Waiting is bit 0
            out.append(LockEntry(thread.address, a, lock, _flag(v, "AcquiredBit", "AcquiredByte"), waiting))
        return out
    except MemoryFault as e:
        diags.add("unreadable", "thread 0x%x: AutoBoost lock entries unreadable" % thread.address, e.address)
        return []
    except (FieldNotFound, TypeNotFound) as e:
        diags.add("missing-type", "AutoBoost lock entries not read: %s" % e)
        return []
