"""Where pending power and PnP IRPs are found, and the power manager's record of them.

    pop_irp_list(target, diags)     -> [PopIrp] or None (the build's symbols lack _POP_IRP_DATA)
    thread_irps(target, thread, diags) -> [IRP address] on _ETHREAD.IrpList
    device_tree(target, diags)      -> [(devnode, PDO)] from nt!IopRootDeviceNode, preorder

Facts used:
- `nt!PopIrpList` lists every power IRP the power manager allocated ("Allocated power irps"
  in !poaction); on 8.1 and later the public symbols type its entries as `_POP_IRP_DATA`
  (Link, Irp, Pdo, TargetDevice, CurrentDevice, WatchdogStart, MinorFunction,
  PowerStateType, PowerState).  Windows 7's symbols have the list but not the type, so there
  the IRPs are found on threads' IRP lists and devices' CurrentIrp instead.
- `WatchdogStart` is taken to be interrupt time (100 ns units, `KeQueryInterruptTime`) when
  the power watchdog was armed; the age shown is the shared data's InterruptTime minus it,
  and an age that comes out negative or beyond a year is discarded as not that unit.
  InterruptTime is a `_KSYSTEM_TIME` in the real symbols: see interrupt_time.
- IRPs from `PoRequestPowerIrp` are on no thread's IrpList (it never queues them: ReactOS
  ntoskrnl/po/power.c PoRequestPowerIrp); on 7 they are found only through the bug check,
  a StartIo driver's `DEVICE_OBJECT.CurrentIrp` (used by StartIo drivers only) or a thread.
- A synchronous IRP (IoBuildSynchronousFsdRequest, the PnP manager's IopSynchronousCall) is
  queued on its thread's `IrpList` through `IRP.ThreadListEntry`.
- The device tree: `_DEVICE_NODE.Child` is a node's first child, `Sibling` the next one.
"""
import struct

from ..errors import FieldNotFound, MemoryFault, SymbolNotFound, TypeNotFound
from ..target.layouts import supplement
from .io import power_state_name
from .lists import merge_capped, walk_list
from .views import Struct

MAX_POWER_IRPS = 4096
MAX_THREAD_IRPS = 256
MAX_DEVNODES = 8192
MAX_UNREADABLE_SHOWN = 16       # unreadable power IRP records listed one by one, the rest counted
MAX_THREAD_IRP_WARNINGS = 256    # warnings kept from all threads' IRP lists (merge_capped)
YEAR_100NS = 365 * 24 * 3600 * 10 ** 7


class PopIrp(object):
    __slots__ = ("address", "irp", "pdo", "target_device", "current_device", "watchdog_start",
                 "minor", "power", "system_transition")

    def __init__(self, address):
        self.address = address
        self.irp = self.pdo = self.target_device = self.current_device = 0
        self.watchdog_start = 0
        self.minor = 0
        self.power = None
        self.system_transition = False


def pop_irp_list(target, diags):
    """The power manager's IRP records, or None when this build's symbols do not type them."""
    lays = target.layouts()
    if not lays.has_type("_POP_IRP_DATA"):
        return None
    try:
        head = target.symbol("nt!PopIrpList")
    except SymbolNotFound as e:
        diags.add("missing-symbol", "power IRP list not read: %s" % e)
        return None
    lay = lays.layout("_POP_IRP_DATA")
    w = walk_list(target, head, lay.offset("Link"), "power IRP list (nt!PopIrpList)", MAX_POWER_IRPS)
    diags.extend(d for d in w.diagnostics if d not in diags)
    out, unreadable = [], 0
    for a in w.items:
        p = PopIrp(a)
        try:
            v = Struct(target, lay, a)
            p.irp, p.pdo = v["Irp"], v["Pdo"]
            p.target_device, p.current_device = v.get("TargetDevice", 0), v.get("CurrentDevice", 0)
            p.watchdog_start = v.get("WatchdogStart", 0)
            p.minor = v.get("MinorFunction", 0)
            p.system_transition = bool(v.get("SystemTransition", 0))
            if lay.has("PowerStateType") and lay.has("PowerState"):
                state = int.from_bytes(v.raw("PowerState")[:4], "little")
                p.power = power_state_name(lays, v["PowerStateType"], state)
        except MemoryFault as e:
            unreadable += 1
            if unreadable <= MAX_UNREADABLE_SHOWN:
                diags.add("unreadable", "power IRP record 0x%x is unreadable (0x%x)" % (a, e.address), e.address)
            continue
        out.append(p)
    if unreadable > MAX_UNREADABLE_SHOWN:
        diags.add("unreadable", "%d more power IRP records are unreadable" % (unreadable - MAX_UNREADABLE_SHOWN))
    return out


KSYSTEM_TIME_PARTS = (("LowPart", 0), ("High1Time", 4), ("High2Time", 8))   # wdm.h KSYSTEM_TIME


def interrupt_time(target, diags):
    """Interrupt time now (100 ns units), or None.

    The real symbols type `_KUSER_SHARED_DATA.InterruptTime` (+0x8) as a 12-byte
    `_KSYSTEM_TIME` {LowPart u32, High1Time s32, High2Time s32}; older recordings give it as a
    plain 8-byte integer.  The layout is probed, never the build: a scalar field is read as
    it is; a `_KSYSTEM_TIME` is LowPart | High1Time << 32, and only when High1Time ==
    High2Time (the writer stores High2Time apart from LowPart/High1Time, so a snapshot taken
    between the stores has them differ -- KeQueryInterruptTime's own consistency check).  A
    torn pair is reported and the time taken as unknown: the target is frozen while it is
    examined (a dump, or a kernel broken into), so reading it again gives the same bytes."""
    try:
        shared = int(supplement()["addresses"]["KI_USER_SHARED_DATA"], 16)
        lays = target.layouts()
        field = lays.layout("_KUSER_SHARED_DATA").field("InterruptTime")
        if field.size == 8 and field.type in lays.base_types:         # an 8-byte integer (older recordings)
            return Struct(target, "_KUSER_SHARED_DATA", shared)["InterruptTime"]
        at = shared + field.offset
        parts = {}
        if lays.has_type(field.type) and all(lays.layout(field.type).has(n) for n, _ in KSYSTEM_TIME_PARTS):
            v = Struct(target, field.type, at)
            parts = {n: v[n] for n, _ in KSYSTEM_TIME_PARTS}
        elif field.size >= 12:                                         # typed, but the type is not readable
            raw = target.read(at, 12)
            parts = {n: struct.unpack_from("<i" if n != "LowPart" else "<I", raw, o)[0]
                     for n, o in KSYSTEM_TIME_PARTS}
        else:
            diags.add("missing-type", "IRP ages unknown: _KUSER_SHARED_DATA.InterruptTime is %s of %d bytes, "
                      "neither an 8-byte integer nor a _KSYSTEM_TIME" % (field.type, field.size))
            return None
    except (MemoryFault, TypeNotFound, FieldNotFound) as e:
        diags.add("unreadable", "IRP ages unknown: cannot read the interrupt time (%s)" % e)
        return None
    high1, high2 = parts["High1Time"] & 0xffffffff, parts["High2Time"] & 0xffffffff
    if high1 != high2:
        diags.add("inconsistent", "IRP ages unknown: the interrupt time was caught mid-update (High1Time "
                  "0x%x, High2Time 0x%x differ: a torn KSYSTEM_TIME)" % (high1, high2), shared + field.offset)
        return None
    return (parts["LowPart"] & 0xffffffff) | (high1 << 32)


def watchdog_age(now, start):
    """Seconds since `start` (interrupt time), or None when it does not look like one."""
    if now is None or not start or start > now or now - start > YEAR_100NS:
        return None
    return (now - start) / 1e7


def thread_irps(target, thread, diags):
    """Addresses of the IRPs queued on a thread's IrpList (synchronous I/O it issued)."""
    lays = target.layouts()
    try:
        head = thread + lays.layout("_ETHREAD").offset("IrpList")
        link = lays.layout("_IRP").offset("ThreadListEntry")
    except (TypeNotFound, FieldNotFound) as e:
        diags.add("missing-type", "thread IRP lists not read: %s" % e)
        return []
    w = walk_list(target, head, link, "IRP list of thread 0x%x" % thread, MAX_THREAD_IRPS)
    merge_capped(diags, w.diagnostics, "thread IRP lists", MAX_THREAD_IRP_WARNINGS)
    return list(w.items)


def device_tree(target, diags):
    """[(devnode, PDO)] of the PnP device tree, preorder from nt!IopRootDeviceNode; loops,
    unreadable nodes and the cap cut the walk and say so."""
    try:
        root_ptr = target.symbol("nt!IopRootDeviceNode")
        root = struct.unpack("<Q", target.read(root_ptr, 8))[0]
    except SymbolNotFound as e:
        diags.add("missing-symbol", "device tree not walked: %s" % e)
        return []
    except MemoryFault as e:
        diags.add("unreadable", "device tree not walked: nt!IopRootDeviceNode is unreadable", e.address)
        return []
    lay = target.layouts().layout("_DEVICE_NODE")
    out, seen, todo = [], set(), [root] if root else []
    while todo:
        n = todo.pop()
        if n in seen:
            diags.add("loop", "device tree: node 0x%x is reached twice (a Child/Sibling loop); "
                      "the walk skips it" % n, n)
            continue
        if len(out) >= MAX_DEVNODES:
            diags.add("cap", "device tree: stopped after %d nodes (cap)" % MAX_DEVNODES, n)
            break
        seen.add(n)
        try:
            v = Struct(target, lay, n)
            child, sibling, pdo = v["Child"], v["Sibling"], v["PhysicalDeviceObject"]
        except MemoryFault as e:
            diags.add("unreadable", "device tree: node 0x%x is unreadable; its children and later "
                      "siblings are not listed" % n, e.address)
            continue
        out.append((n, pdo))
        if sibling:
            todo.append(sibling)
        if child:
            todo.append(child)
    return out
