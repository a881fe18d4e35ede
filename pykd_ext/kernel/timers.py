"""Timer resolution: who asks the clock to tick faster, and who sets it now.

    requests(target, diags) -> [Request] from nt!ExpTimerResolutionListHead
    increments(target, diags) -> {"current", "maximum", "minimum"} in 100 ns units
    kernel_request(target, diags) -> the drivers' request (ExSetTimerResolution)
    explain(reqs, kernel, inc) -> who sets the clock, and what does not add up

Facts used: NtSetTimerResolution puts the process on `nt!ExpTimerResolutionListHead`
through `_EPROCESS.TimerResolutionLink` and records `RequestedTimerResolution` and
`SmallestTimerResolution` (100 ns units).  The list head is a bare LIST_ENTRY in nt's data,
not a process: only the entries after it are processes (the seed's `!list` printed the head
as a process named "???").  The clock's interval now is `nt!KeTimeIncrement`; the coarsest is
`nt!KeMaximumIncrement`, the finest possible `nt!KeMinimumIncrement` (ReactOS ntoskrnl/ex/time.c
NtQueryTimerResolution; decompiled NtQueryTimerResolution).

Which requests count (decompiled x64 ntoskrnl NtSetTimerResolution and ExpUpdateTimerResolution,
Windows 7 to 11): a process stays on the list once it has asked; releasing clears
`Flags.SetTimerResolution` (bit 12) and sets `RequestedTimerResolution` to 0, and leaves
`SmallestTimerResolution` (the finest request whose stack was recorded, with
`TimerResolutionStackRecord`) as history.  The clock is recomputed from KeMaximumIncrement,
`nt!ExpKernelRequestedTimerResolution` while `nt!ExpKernelResolutionCount` != 0 (drivers'
ExSetTimerResolution), and every listed process with SetTimerResolution set and
`Flags3.TimerResolutionIgnore` clear (where the layout has it), taking the smallest
RequestedTimerResolution, clamped to KeMinimumIncrement.  So a row is live (flag set), ignored
(flag set, TimerResolutionIgnore set) or stale (flag clear: it asked once, it asks no more).
Fields are probed by name; where the layout has no SetTimerResolution, a request is live when
RequestedTimerResolution != 0.
"""
import struct

from ..errors import MemoryFault, SymbolNotFound
from .lists import walk_list
from .processes import decode_process
from .views import Struct

MAX_REQUESTS = 65536
# Unreadable entries reported one by one; the rest counted in one line (each warning added is
# compared with those held: 65,536 of them would take minutes).
MAX_UNREADABLE_SHOWN = 16


LIVE, IGNORED, STALE, UNKNOWN = "live", "ignored", "stale", "unknown"


class Request(object):
    __slots__ = ("process", "name", "pid", "requested", "smallest", "readable", "set_flag", "ignored")

    def __init__(self, process):
        self.process = process
        self.name, self.pid = "?", None
        self.requested = self.smallest = None
        self.readable = False
        self.set_flag = None         # Flags.SetTimerResolution; None where the layout has no such bit
        self.ignored = None          # Flags3.TimerResolutionIgnore; None where the layout has none

    @property
    def state(self):
        if not self.readable or self.requested is None:
            return UNKNOWN
        if self.set_flag is None:
            return LIVE if self.requested else STALE
        if not self.set_flag:
            return STALE
        return IGNORED if self.ignored else LIVE

    @property
    def asks(self):
        """The interval this process asks for now (None when it no longer asks).  A request of 0
        with the flag set asks for the finest possible (the kernel clamps it to
        KeMinimumIncrement)."""
        return self.requested if self.state in (LIVE, IGNORED) else None

    @property
    def finest(self):
        """What the process asks for now (not its historical SmallestTimerResolution)."""
        return self.asks


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
    out, unreadable = [], 0
    for p in w.items:
        r = Request(p)
        proc = decode_process(target, p)
        r.name, r.pid = proc.name, proc.pid
        try:
            v = Struct(target, lay, p)
            r.requested, r.smallest = v["RequestedTimerResolution"], v["SmallestTimerResolution"]
            if v.has("SetTimerResolution"):
                r.set_flag = bool(v["SetTimerResolution"])
            if v.has("TimerResolutionIgnore"):
                r.ignored = bool(v["TimerResolutionIgnore"])
            r.readable = proc.readable
        except MemoryFault as e:
            unreadable += 1
            if unreadable <= MAX_UNREADABLE_SHOWN:
                diags.add("unreadable", "process 0x%x on the timer resolution list is unreadable" % p, e.address)
        out.append(r)
    if unreadable > MAX_UNREADABLE_SHOWN:
        diags.add("unreadable", "%d more processes on the timer resolution list are unreadable"
                  % (unreadable - MAX_UNREADABLE_SHOWN))
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


def _read_u32(target, name):
    return struct.unpack("<I", target.read(target.symbol(name), 4))[0]


def kernel_request(target, diags):
    """The drivers' request (ExSetTimerResolution keeps one for the kernel: the finest asked
    while any is open -- decompiled ExSetTimerResolution): {"available", "requested",
    "count", "live"}.  A target whose symbols lack nt!ExpKernelRequestedTimerResolution gives
    available False (said, not warned); an unreadable one is a warning."""
    out = {"available": False, "requested": None, "count": None, "live": None}
    try:
        out["requested"] = _read_u32(target, "nt!ExpKernelRequestedTimerResolution")
        out["available"] = True
    except SymbolNotFound:
        return out
    except MemoryFault as e:
        diags.add("unreadable", "nt!ExpKernelRequestedTimerResolution is unreadable", e.address)
        return out
    try:
        out["count"] = _read_u32(target, "nt!ExpKernelResolutionCount")
    except SymbolNotFound:
        pass                         # no count: the request alone says whether drivers ask
    except MemoryFault as e:
        diags.add("unreadable", "nt!ExpKernelResolutionCount is unreadable", e.address)
    out["live"] = bool(out["count"]) if out["count"] is not None else bool(out["requested"])
    return out


def process_request_count(target, diags):
    """nt!ExpTimerResolutionCount: processes with SetTimerResolution set (decompiled
    NtSetTimerResolution counts them); None where the symbol is missing."""
    try:
        return _read_u32(target, "nt!ExpTimerResolutionCount")
    except SymbolNotFound:
        return None
    except MemoryFault as e:
        diags.add("unreadable", "nt!ExpTimerResolutionCount is unreadable", e.address)
        return None


#: how far under a request the HAL may set the clock: the largest interval the clock hardware
#: gives at or below the request (ReactOS HalSetTimeIncrement); a 1024 Hz clock gives 0.9766 ms
#: for 1 ms (2.3 % under) -- 5 % covers that with room, and stays far from the next request
#: steps people use (0.5 ms, 1 ms, 15.625 ms)
HAL_ROUNDING = 0.05


def explain(reqs, kernel, inc):
    """Who sets the clock, by the kernel's recomputation (ExpUpdateTimerResolution): the
    expected interval is the finest live request (processes with SetTimerResolution set and
    not ignored, and the drivers' request while open), clamped to KeMinimumIncrement, or
    KeMaximumIncrement when none.  Returns a dict:
      kind: "set" (named requesters hold it), "finer" (the clock is finer than every live
            request: a requester not on the list), "default" (nobody asks, the clock is at its
            coarsest), "coarser" (a live request finer than the clock is not honoured),
            "unknown" (the clock or its bounds unread)
      set_by: [{"process", "pid", "eprocess"} or {"drivers": True}], finest first
      not_honoured: [Request] live requests finer than the clock
      ignored: [Request] whose request the kernel ignores (TimerResolutionIgnore)
      expected: the interval the live requests call for."""
    cur, mx, mn = inc.get("current"), inc.get("maximum"), inc.get("minimum")
    out = {"kind": "unknown", "set_by": [], "not_honoured": [], "ignored": [], "expected": None,
           "finest_live": None}
    out["ignored"] = [r for r in reqs if r.state == IGNORED]
    if cur is None or mx is None:
        return out
    lo = mn or 0
    cands = [(max(r.requested, lo), 0, r) for r in reqs if r.state == LIVE]
    if kernel.get("live") and kernel.get("requested") is not None:
        cands.append((max(kernel["requested"], lo), 1, None))
    cands.sort(key=lambda c: (c[0], c[1], (c[2].pid or 0) if c[2] is not None else 0))
    finest = cands[0][0] if cands else None
    out["finest_live"] = finest
    out["expected"] = min(finest, mx) if finest is not None else mx
    # the HAL grants the largest interval its clock can give at or below the one asked for
    # (ReactOS HalSetTimeIncrement), so the clock may sit a little under the request that
    # sets it (1 ms -> 0.9766 ms on a 1024 Hz clock): within HAL_ROUNDING it is that request's
    out["set_by"] = [c[2] if c[2] is not None else "drivers" for c in cands
                     if c[0] == finest and cur <= c[0] and c[0] - cur <= c[0] * HAL_ROUNDING]
    out["not_honoured"] = [c[2] if c[2] is not None else "drivers" for c in cands if c[0] < cur]
    if out["not_honoured"]:
        out["kind"] = "coarser"
    elif out["set_by"]:
        out["kind"] = "set"
    elif cur < out["expected"] and not (finest is not None and finest - cur <= finest * HAL_ROUNDING):
        out["kind"] = "finer"
    elif any(max(r.requested, lo) < cur for r in out["ignored"]):
        out["kind"] = "ignored"
    elif not cands and cur == mx:
        out["kind"] = "default"
    return out
