"""Timer resolution: which processes asked the clock to tick faster.

    requests(target, diags) -> [Request] from nt!ExpTimerResolutionListHead
    increments(target, diags) -> {"current", "maximum", "minimum"} in 100 ns units

Facts used: NtSetTimerResolution puts the process on `nt!ExpTimerResolutionListHead`
through `_EPROCESS.TimerResolutionLink` and records `RequestedTimerResolution` and
`SmallestTimerResolution` (100 ns units).  The list head is a bare LIST_ENTRY in nt's data,
not a process: only the entries after it are processes (the seed's `!list` printed the head
as a process named "???").  The clock's interval now is `nt!KeTimeIncrement`; the coarsest is
`nt!KeMaximumIncrement`, the finest possible `nt!KeMinimumIncrement`.
"""
import struct

from ..errors import MemoryFault, SymbolNotFound
from .lists import walk_list
from .processes import decode_process
from .views import Struct

MAX_REQUESTS = 65536


class Request(object):
    __slots__ = ("process", "name", "pid", "requested", "smallest", "readable")

    def __init__(self, process):
        self.process = process
        self.name, self.pid = "?", None
        self.requested = self.smallest = None
        self.readable = False

    @property
    def finest(self):
        """The finest interval this process asks for (None when it asks for none)."""
        vals = [v for v in (self.requested, self.smallest) if v]
        return min(vals) if vals else None


def requests(target, diags):
    try:
        head = target.symbol("nt!ExpTimerResolutionListHead")
    except SymbolNotFound as e:
        diags.add("missing-symbol", "timer resolution requests not listed: %s" % e)
        return [], False
    lay = target.layouts().layout("_EPROCESS")
    w = walk_list(target, head, lay.offset("TimerResolutionLink"),
                  "timer resolution list (nt!ExpTimerResolutionListHead)", MAX_REQUESTS)
    diags.extend(d for d in w.diagnostics if d not in diags)
    out = []
    for p in w.items:
        r = Request(p)
        proc = decode_process(target, p)
        r.name, r.pid = proc.name, proc.pid
        try:
            v = Struct(target, lay, p)
            r.requested, r.smallest = v["RequestedTimerResolution"], v["SmallestTimerResolution"]
            r.readable = proc.readable
        except MemoryFault as e:
            diags.add("unreadable", "process 0x%x on the timer resolution list is unreadable" % p, e.address)
        out.append(r)
    return out, w.complete


def increments(target, diags):
    out = {}
    for key, name in (("current", "nt!KeTimeIncrement"), ("maximum", "nt!KeMaximumIncrement"),
                      ("minimum", "nt!KeMinimumIncrement")):
        try:
            out[key] = struct.unpack("<I", target.read(target.symbol(name), 4))[0]
        except SymbolNotFound as e:
            diags.add("missing-symbol", "%s" % e)
            out[key] = None
        except MemoryFault as e:
            diags.add("unreadable", "%s is unreadable" % name, e.address)
            out[key] = None
    return out
