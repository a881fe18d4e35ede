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
from ..errors import FieldNotFound, MemoryFault, TypeNotFound
from .diag import Diagnostics
from .lists import merge_capped, walk_list, walk_list_back, walk_single_list
from .views import Struct

MAX_DPCS = 4096
MAX_UNREADABLE_SHOWN = 16      # unreadable DPCs of a queue listed one by one, the rest counted
MAX_QUEUE_WARNINGS = 256       # warnings kept from all queues of all processors (lists.merge_capped)
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
    __slots__ = ("index", "prcb", "current_thread", "idle_thread", "next_thread", "current_dpc_routine",
                 "dpc_routine_active", "watchdog", "queues", "readable")

    def __init__(self, index, prcb):
        self.index, self.prcb = index, prcb
        self.current_thread = self.idle_thread = 0
        self.next_thread = 0          # KPRCB.NextThread: the Standby thread chosen to run here next
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
        if diags is not None:
            diags.add("unreadable", "DPC 0x%x (%s queue) is unreadable (0x%x)" % (address, queue, e.address),
                      e.address)
    return d


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
        head = data.address_of("DpcListHead")
        w = walk_list(target, head, link_off, what, MAX_DPCS)
        broken = [x.address - link_off for x in w.diagnostics if x.kind == "unreadable" and x.address]
        found = set(w.items)
        entries = [(a, None) for a in w.items] + [(a, None) for a in broken if a not in found]
        if not w.complete:       # the walk goes on from the other end, through Blinks
            entries += [(a, "Blink") for a in walk_list_back(target, head, link_off, {a for a, _ in entries},
                                                             MAX_DPCS)]
    else:                                           # singly linked (8.1 and later)
        head = data.sub("DpcList")
        last = head["LastEntry"]
        w = walk_single_list(target, head.sub("ListHead")["Next"], link_off, what, MAX_DPCS)
        entries = [(a, None) for a in w.items]
        if w.complete and last and w.items and last - link_off != w.items[-1]:
            w.diagnostics.add("inconsistent", "%s: LastEntry 0x%x is not the last entry reached (0x%x)"
                              % (what, last, w.items[-1] + link_off), last)
        # an empty list's LastEntry points at its own ListHead (decompiled 8.1 KiInsertQueueDpc)
        empty_mark = head.address_of("ListHead")
        if not w.complete and last and last != empty_mark and last - link_off not in w.items:
            entries.append((last - link_off, "LastEntry"))
    local.extend(w.diagnostics)
    q.complete = w.complete
    unreadable = 0
    for a, via in entries:
        d = decode_dpc(target, a, kind, local if unreadable < MAX_UNREADABLE_SHOWN else None)
        unreadable += not d.readable
        d.via = via
        q.dpcs.append(d)
    if unreadable > MAX_UNREADABLE_SHOWN:
        local.add("unreadable", "%s: %d more DPCs are unreadable" % (what, unreadable - MAX_UNREADABLE_SHOWN))
    merge_capped(diags, local, "DPC queues", MAX_QUEUE_WARNINGS)
    return q


def decode_cpu(target, index, prcb, diags):
    c = Cpu(index, prcb)
    lays = target.layouts()
    try:
        p = Struct(target, "_KPRCB", prcb)
        c.current_thread, c.idle_thread = p["CurrentThread"], p["IdleThread"]
        c.next_thread = p.get("NextThread", 0)
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
