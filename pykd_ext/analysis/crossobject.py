"""Lock + event hangs: a lock's owner waits on an event, and waiters of that same lock run in
the same driver -- the kind of hang where the event would be set by code that first needs the
lock.  The kernel records who waits on an event, never who would set it, so this is only ever
a suspicion, said with its reasoning (issue 15, point 4).

Where an event lives is said as precisely as memory allows: a global's symbol, module+offset,
a thread's stack, a device extension, or the pool allocation holding it with its pool tag
(the x64 POOL_HEADER in front of every small pool block: BlockSize in 16-byte units at +2,
PoolType + 1 at +3, PoolTag at +4 -- ReactOS ntoskrnl/mm/ARM3/expool.c ExAllocatePoolWithTag).
"""

from ..errors import MemoryFault

PAGE = 0x1000
POOL_HEADER = 0x10


def pool_block(target, address):
    """(block start, tag) of the pool allocation holding `address`, found by looking back, in
    16-byte steps within its page, for a POOL_HEADER whose block covers it and whose tag is
    printable; None when there is none (or the page is unreadable)."""
    page = address & ~(PAGE - 1)
    try:
        raw = target.read(page, PAGE)
    except MemoryFault:
        return None
    off = (address - page) & ~0xf
    while off >= POOL_HEADER:
        h = off - POOL_HEADER
        block_size, pool_type = raw[h + 2], raw[h + 3]
        tag = raw[h + 4:h + 8]
        if block_size and pool_type and h + block_size * 16 > address - page and \
                all(0x20 <= c < 0x7f for c in tag):
            return page + off, tag.decode("ascii")
        off -= 0x10
    return None


def where(a, target, address):
    """Where an object lives, in words."""
    name, _ = a.name_lock(address) if a.name_lock is not None else ("", None)
    if name:
        return name
    block = pool_block(target, address)
    if block is not None:
        start, tag = block
        return "pool block 0x%x tagged '%s' (+0x%x)" % (start, tag, address - start)
    return "unknown memory"


def suspect(a, target):
    """For each chain whose root thread (a lock owner) waits on events: what the events are and
    which waiters of the chain run in the root's driver.  Sets Chain.suspected."""
    for ch in a.chains:
        if ch.root_kind != "thread":
            continue
        f = a.threads.get(ch.root)
        if f is None or f.state != "Waiting" or not f.waits_on or not f.driver:
            continue
        events = [(o, k) for o, k in f.waits_on if k and k.startswith("Event")]
        if not events:
            continue
        same = []
        for p in ch.paths:
            w = a.threads.get(p[0].thread) if p else None
            if w is not None and w.driver == f.driver and w.address not in same:
                same.append(w.address)
        if not same:
            continue
        locks = sorted({p[-1].lock for p in ch.paths if p})
        described = [(o, where(a, target, o)) for o, _ in events]
        ch.suspected = {
            "events": described,
            "same_driver_waiters": same,
            "locks": locks,
            "reason": ("the owner, in %s, waits on %s while holding %s; %d waiter%s of %s run%s in %s too: "
                       "if %s sets that event only after taking the lock, this is a deadlock (suspected: "
                       "the kernel records who waits on an event, never who would set it)" % (
                           f.driver, ", ".join("event 0x%x (%s)" % d for d in described),
                           ", ".join("0x%x" % l for l in locks), len(same), "s" if len(same) > 1 else "",
                           "that lock" if len(locks) == 1 else "those locks", "" if len(same) > 1 else "s",
                           f.driver, f.driver)),
        }
