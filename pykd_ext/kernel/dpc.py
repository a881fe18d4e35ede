"""Processors and their DPC queues.

    cpus(target, diags) -> [Cpu]: each processor's PRCB, current and idle thread, the DPC
                           running now (where the build records it), watchdog counters and
                           both DPC queues (normal: DpcData[0], threaded: DpcData[1])

Facts used (layouts; probed, never by build number):
- `_KPRCB.DpcData[2]` is `_KDPC_DATA`: Windows 7 queues DPCs on a doubly linked
  `DpcListHead` through `_KDPC.DpcListEntry` (a LIST_ENTRY); 8.1 and later on a singly linked
  `DpcList` (`_KDPC_LIST`: ListHead.Next, LastEntry) through a SINGLE_LIST_ENTRY.
- The DPC running now: `_KPRCB.CurrentDpcRoutine` (10 and later), `_KDPC_DATA.ActiveDpc`
  (8.1 and later), `_KPRCB.DpcRoutineActive` (all).
- Watchdog counters: `DpcTimeCount`; `DpcTimeLimit` (7-10) / `DpcTimeLimitTicks` (11);
  `DpcWatchdogCount`; `DpcWatchdogPeriod` (7-10) / `DpcWatchdogPeriodTicks` (11).
- `_KDPC.Importance`: 0 low, 1 medium, 2 high, 3 medium-high (KDPC_IMPORTANCE).
"""
import struct

from ..errors import FieldNotFound, MemoryFault, TypeNotFound
from .diag import Diagnostics
from .lists import walk_list
from .views import Struct

MAX_DPCS = 4096
IMPORTANCE = {0: "Low", 1: "Medium", 2: "High", 3: "MediumHigh"}
QUEUES = ("normal", "threaded")
WATCHDOG_FIELDS = {            # what we call it -> the names builds give it, first found wins
    "dpc_time_count": ("DpcTimeCount",),
    "dpc_time_limit": ("DpcTimeLimit", "DpcTimeLimitTicks"),
    "watchdog_count": ("DpcWatchdogCount",),
    "watchdog_period": ("DpcWatchdogPeriod", "DpcWatchdogPeriodTicks"),
}


class Dpc(object):
    __slots__ = ("address", "queue", "type", "importance", "number", "routine", "context", "readable", "via")

    def __init__(self, address, queue):
        self.address, self.queue = address, queue
        self.type = self.importance = self.number = None
        self.routine = self.context = 0
        self.readable = False
        self.via = None          # how a DPC past a broken link was reached ("Blink", "LastEntry")


class Queue(object):
    __slots__ = ("kind", "dpcs", "depth", "count", "active", "complete")

    def __init__(self, kind):
        self.kind = kind
        self.dpcs = []
        self.depth = self.count = None
        self.active = 0          # _KDPC_DATA.ActiveDpc where the build has it
        self.complete = True


class Cpu(object):
    __slots__ = ("index", "prcb", "current_thread", "idle_thread", "current_dpc_routine",
                 "dpc_routine_active", "watchdog", "queues", "readable")

    def __init__(self, index, prcb):
        self.index, self.prcb = index, prcb
        self.current_thread = self.idle_thread = 0
        self.current_dpc_routine = 0
        self.dpc_routine_active = False
        self.watchdog = {}
        self.queues = []
        self.readable = False

    @property
    def idle(self):
        return bool(self.current_thread) and self.current_thread == self.idle_thread


def decode_dpc(target, address, queue, diags):
    d = Dpc(address, queue)
    try:
        v = Struct(target, "_KDPC", address)
        d.type = target.layouts().enum_names("_KOBJECTS").get(v["Type"], "Type%d" % v["Type"])
        d.importance = IMPORTANCE.get(v["Importance"], "Importance%d" % v["Importance"])
        d.number = v["Number"]
        d.routine, d.context = v["DeferredRoutine"], v["DeferredContext"]
        d.readable = True
    except MemoryFault as e:
        diags.add("unreadable", "DPC 0x%x (%s queue) is unreadable (0x%x)" % (address, queue, e.address), e.address)
    return d


def _walk_single(target, head_next, last_entry, link_off, what, diags):
    """Entries of a singly linked DPC list: (KDPC addresses, complete)."""
    out, seen, node = [], set(), head_next
    while node:
        if node in seen:
            diags.add("loop", "%s loops back to 0x%x after %d entries" % (what, node, len(out)), node)
            return out, False
        if len(out) >= MAX_DPCS:
            diags.add("cap", "%s: stopped after %d entries (cap)" % (what, MAX_DPCS), node)
            return out, False
        seen.add(node)
        out.append(node - link_off)
        try:
            node = struct.unpack("<Q", target.read(node, 8))[0]
        except MemoryFault as e:
            diags.add("unreadable", "%s: the link of entry 0x%x is unreadable; the entries after it are "
                      "not reachable" % (what, node - link_off), e.address)
            return out, False
    if last_entry and out and last_entry - link_off != out[-1]:
        diags.add("inconsistent", "%s: LastEntry 0x%x is not the last entry reached (0x%x)"
                  % (what, last_entry, out[-1] + link_off), last_entry)
    return out, True


def _queue(target, cpu, data, kind, diags):
    q = Queue(kind)
    lays = target.layouts()
    dpc_lay = lays.layout("_KDPC")
    link_off = dpc_lay.offset("DpcListEntry")
    q.depth = data["DpcQueueDepth"]
    q.count = data.get("DpcCount")
    q.active = data.get("ActiveDpc", 0)
    what = "CPU %d %s DPC queue" % (cpu.index, kind)
    local = Diagnostics()
    if data.has("DpcListHead"):                     # doubly linked (Windows 7)
        w = walk_list(target, data.address_of("DpcListHead"), link_off, what, MAX_DPCS)
        local.extend(w.diagnostics)
        addrs, q.complete = list(w.items), w.complete
        broken = [x.address - link_off for x in w.diagnostics if x.kind == "unreadable" and x.address]
        addrs += [b for b in broken if b not in addrs]          # shown as unreadable rows
        if not w.complete:
            # the walk goes on from the other end: Blinks from the head back to the break
            tail = _walk_back(target, data.address_of("DpcListHead"), link_off, set(addrs), local, what)
            for a in tail:
                addrs.append(a)
        entries = [(a, "Blink" if i >= len(w.items) + len(broken) else None) for i, a in enumerate(addrs)]
    else:                                           # singly linked (8.1 and later)
        head = data.sub("DpcList")
        addrs, q.complete = _walk_single(target, head.sub("ListHead")["Next"], head["LastEntry"],
                                         link_off, what, local)
        entries = [(a, None) for a in addrs]
        last = head["LastEntry"]
        if not q.complete and last and last - link_off not in addrs:
            entries.append((last - link_off, "LastEntry"))
    for a, via in entries:
        d = decode_dpc(target, a, kind, local)
        d.via = via
        q.dpcs.append(d)
    diags.extend(x for x in local if x not in diags)
    return q


def _walk_back(target, head, link_off, seen, diags, what):
    out, node = [], head
    for _ in range(MAX_DPCS):
        try:
            node = struct.unpack("<Q", target.read(node + 8, 8))[0]
        except MemoryFault as e:
            diags.add("unreadable", "%s: Blink of 0x%x is unreadable" % (what, node), e.address)
            break
        if node == head or not node or node - link_off in seen or node - link_off in out:
            break
        out.append(node - link_off)
    return list(reversed(out))


def decode_cpu(target, index, prcb, diags):
    c = Cpu(index, prcb)
    lays = target.layouts()
    try:
        p = Struct(target, "_KPRCB", prcb)
        c.current_thread, c.idle_thread = p["CurrentThread"], p["IdleThread"]
        c.current_dpc_routine = p.get("CurrentDpcRoutine", 0)
        c.dpc_routine_active = bool(p.get("DpcRoutineActive", 0))
        for key, names in WATCHDOG_FIELDS.items():
            name = next((n for n in names if p.has(n)), None)
            if name is not None:
                c.watchdog[key] = p[name]
        c.readable = True
    except MemoryFault as e:
        diags.add("unreadable", "CPU %d: processor block 0x%x is unreadable" % (index, prcb), e.address)
        return c
    data_lay = lays.layout("_KDPC_DATA")
    base = p.address_of("DpcData")
    for i, kind in enumerate(QUEUES):
        try:
            c.queues.append(_queue(target, c, Struct(target, data_lay, base + i * data_lay.size), kind, diags))
        except MemoryFault as e:
            diags.add("unreadable", "CPU %d: %s DPC queue header is unreadable" % (index, kind), e.address)
            q = Queue(kind)
            q.complete = False
            c.queues.append(q)
    return c


def cpus(target, diags):
    out = []
    for proc in target.processors():
        try:
            out.append(decode_cpu(target, proc.index, proc.prcb, diags))
        except (TypeNotFound, FieldNotFound) as e:
            diags.add("missing-type", "CPU %d: %s" % (proc.index, e))
    return out
