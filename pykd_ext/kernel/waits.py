"""A waiting thread's wait blocks, and what kind of dispatcher object each one names.

Windows 7 chains a thread's wait blocks through _KWAIT_BLOCK.NextWaitBlock (a ring);
Windows 8 dropped that field and keeps _KTHREAD.WaitBlockCount blocks in an array at
WaitBlockList.  We probe for NextWaitBlock, never for a build.
"""
from ..errors import MemoryFault
from .views import Struct

MAX_WAIT_BLOCKS = 64          # MAXIMUM_WAIT_OBJECTS


class WaitBlock(object):
    __slots__ = ("address", "object")

    def __init__(self, address, obj):
        self.address, self.object = address, obj


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
    out = []
    if wlay.has("NextWaitBlock"):
        wb, seen = first, set()
        while wb and wb not in seen and len(out) < MAX_WAIT_BLOCKS:
            seen.add(wb)
            try:
                v = Struct(target, wlay, wb)
                out.append(WaitBlock(wb, v["Object"]))
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
    active = target.layouts().enum("_KWAIT_BLOCK_STATE").get("WaitBlockActive")
    try:
        # the array in one read (a naive target, as pykd's typedVar, reads field by field)
        raw = target.read(first, wlay.size * count) if target.whole_structures else None
        blocks = []
        for i in range(count):
            a = first + i * wlay.size
            v = Struct(target, wlay, a, raw=raw[i * wlay.size:(i + 1) * wlay.size] if raw else None)
            blocks.append((v.get("BlockState"), WaitBlock(a, v["Object"])))
    except MemoryFault as e:
        diags.add("unreadable", "thread 0x%x: wait block at 0x%x is unreadable" % (thread.address, first),
                  e.address)
        return []
    out = [b for s, b in blocks if s == active and b.object]
    return out or [b for _, b in blocks if b.object]


def object_type(target, address):
    """The _KOBJECTS name of the dispatcher object at `address` (MemoryFault if unreadable)."""
    t = Struct(target, "_DISPATCHER_HEADER", address)["Type"]
    return target.layouts().enum_names("_KOBJECTS").get(t, "Type%d" % t)
