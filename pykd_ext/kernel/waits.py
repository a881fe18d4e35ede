"""A waiting thread's wait blocks, and what kind of dispatcher object each one names.

Windows 7 chains a thread's wait blocks through _KWAIT_BLOCK.NextWaitBlock (a ring);
Windows 8 dropped that field and keeps _KTHREAD.WaitBlockCount blocks in an array at
WaitBlockList.  We probe for NextWaitBlock, never for a build.

What a block means (pykd_ext/SEMANTICS.md, "Thread waits"):
- a block whose BlockState is WaitBlockInactive, or whose Object is (PVOID)-1, names nothing
  the thread waits for: Windows 8 and later's KeDelayExecutionThread leaves WaitBlock[0] so
  (decompiled Win10/11 KeDelayExecutionThread) — a sleeping thread;
- a block on the thread's own KTHREAD.Timer is its time-out (Windows 7 links it into the ring:
  WRK KeWaitForSingleObject / KeDelayExecutionThread, TIMER_WAIT_BLOCK), not an object it
  waits for;
- WaitType: WaitAll (0) / WaitAny (1); KeWaitForSingleObject writes WaitAny, so a WaitAny wait
  is "any of these" only when it names more than one object (WRK ke/wait.c).
"""
from ..errors import MemoryFault
from .views import Struct

MAX_WAIT_BLOCKS = 64          # MAXIMUM_WAIT_OBJECTS
NO_OBJECT = 0xffffffffffffffff     # (PVOID)-1: an inactive sleep block's Object
WAIT_ANY = 1                  # _WAIT_TYPE WaitAny


class WaitBlock(object):
    """One wait block: `object` waited on, `wait_type` (0 WaitAll, 1 WaitAny), `timer` when
    the object is the thread's own KTHREAD.Timer (its time-out, not a thing waited for)."""
    __slots__ = ("address", "object", "wait_type", "timer")

    def __init__(self, address, obj, wait_type=None, timer=False):
        self.address, self.object, self.wait_type, self.timer = address, obj, wait_type, timer


def waited_objects(blocks):
    """The blocks that name an object the thread waits for (its time-out excluded)."""
    return [b for b in blocks if not b.timer]


def is_wait_any(blocks):
    """True when the thread waits for any one of several objects (a WaitAny wait on more than
    one object), so that no single one of them is a hard wait-for edge."""
    objs = waited_objects(blocks)
    return len(objs) > 1 and all(b.wait_type == WAIT_ANY for b in objs)


def wait_blocks(thread, diags):
    """The wait blocks of a waiting Thread (empty unless it is in the Waiting state)."""
    k = thread.view
    target = k.target
    states = target.layouts().enum("_KTHREAD_STATE")
    if thread.state != states.get("Waiting", 5):
        return []
    wlay = target.layouts().layout("_KWAIT_BLOCK")
    try:
        first = k["WaitBlockList"]
    except MemoryFault as e:
        diags.add("unreadable", "thread 0x%x: WaitBlockList unreadable" % thread.address, e.address)
        return []
    if not first:
        return []
    lays = target.layouts()
    timer = thread.address + lays.layout("_KTHREAD").offset("Timer") if lays.layout("_KTHREAD").has("Timer") \
        else None
    out = []
    # the block states where the layout has BlockState and the symbols the enum (a recording
    # made before either was read has neither: no states, every block counts)
    states = {}
    if wlay.has("BlockState"):
        states = {v: k for k, v in lays.enum_names("_KWAIT_BLOCK_STATE").items()}
    active, inactive = states.get("WaitBlockActive"), states.get("WaitBlockInactive")
    if wlay.has("NextWaitBlock"):
        wb, seen = first, set()
        while wb and wb not in seen and len(out) < MAX_WAIT_BLOCKS:
            seen.add(wb)
            try:
                v = Struct(target, wlay, wb)
                obj = v["Object"]
                if obj and obj != NO_OBJECT and (inactive is None or v.get("BlockState") != inactive):
                    out.append(WaitBlock(wb, obj, v.get("WaitType"), obj == timer))
                wb = v["NextWaitBlock"]
            except MemoryFault as e:
                diags.add("unreadable", "thread 0x%x: wait block at 0x%x is unreadable"
                          % (thread.address, wb), e.address)
                break
            if wb == first:
                break
        else:
            if wb and wb != first:
                diags.add("loop", "thread 0x%x: wait block ring does not return to its start (0x%x)"
                          % (thread.address, wb), wb)
        return out
    count = k.get("WaitBlockCount", 1) or 1
    if count > MAX_WAIT_BLOCKS:
        diags.add("inconsistent", "thread 0x%x: WaitBlockCount %d is implausible; reading %d"
                  % (thread.address, count, MAX_WAIT_BLOCKS), thread.address)
        count = MAX_WAIT_BLOCKS
    try:
        # the array in one read (a naive target, as pykd's typedVar, reads field by field)
        raw = target.read(first, wlay.size * count) if target.whole_structures else None
        blocks = []
        for i in range(count):
            a = first + i * wlay.size
            v = Struct(target, wlay, a, raw=raw[i * wlay.size:(i + 1) * wlay.size] if raw else None)
            obj = v["Object"]
            blocks.append((v.get("BlockState"), WaitBlock(a, obj, v.get("WaitType"), obj == timer)))
    except MemoryFault as e:
        diags.add("unreadable", "thread 0x%x: wait block at 0x%x is unreadable" % (thread.address, first),
                  e.address)
        return []
    named = [(s, b) for s, b in blocks if b.object and b.object != NO_OBJECT and (inactive is None or s != inactive)]
    out = [b for s, b in named if s == active]
    return out or [b for _, b in named]


def object_type(target, address):
    """The _KOBJECTS name of the dispatcher object at `address` (MemoryFault if unreadable)."""
    t = Struct(target, "_DISPATCHER_HEADER", address)["Type"]
    return target.layouts().enum_names("_KOBJECTS").get(t, "Type%d" % t)
