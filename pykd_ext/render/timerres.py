"""Renderers of the timer-resolution report: JSON document and text.

Rows: live requests first (finest first), then ignored ones, then stale ones (processes that
asked once and no longer ask: their SmallestTimerResolution is history, never blamed).  The
drivers' request (ExSetTimerResolution) is a line of its own; a verdict says who sets the
clock (see kernel/timers.explain)."""
from tabulate import tabulate

from ..kernel.timers import IGNORED, LIVE, STALE
from .doc import document, hx, write_partial_headline

_ORDER = {LIVE: 0, IGNORED: 1, STALE: 2}


def ms(v):
    return None if v is None else round(v / 10000.0, 4)


def _who(x):
    if x == "drivers":
        return {"drivers": True, "process": None, "pid": None, "eprocess": None}
    return {"drivers": False, "process": x.name, "pid": x.pid, "eprocess": hx(x.process)}


def report_dict(reqs, complete, inc, diags, target_name, build, kernel=None, verdict=None, process_count=None,
                interrupted=None):
    kernel = kernel or {"available": False, "requested": None, "count": None, "live": None}
    verdict = verdict or {"kind": "unknown", "set_by": [], "not_honoured": [], "ignored": [],
                          "expected": None, "finest_live": None}

    def key(r):
        st = r.state
        v = r.requested if st in (LIVE, IGNORED) else (r.smallest or 0)
        return (_ORDER.get(st, 3), v if v is not None else 0, r.pid or 0)
    rows = sorted(reqs, key=key)
    setters = set(id(x) for x in verdict["set_by"] if x != "drivers")
    finest_live = verdict.get("finest_live")
    lo = inc.get("minimum") or 0
    doc = document(
        "timerres", target_name, build, interrupted, diags,
        rows=[{"process": r.name, "pid": r.pid, "eprocess": hx(r.process),
               "requested": r.requested, "smallest": r.smallest,
               "requested_ms": ms(r.requested) if r.requested else None,
               "smallest_ms": ms(r.smallest) if r.smallest else None,
               "finest": r.state == LIVE and finest_live is not None and max(r.requested, lo) == finest_live,
               "readable": r.readable,
               "state": r.state, "set_timer_resolution": r.set_flag, "ignored": r.ignored,
               "sets_clock": id(r) in setters} for r in rows],
        kernel={"available": kernel["available"], "requested": kernel["requested"],
                "requested_ms": ms(kernel["requested"]) if kernel["requested"] else None,
                "count": kernel["count"], "live": kernel["live"],
                "sets_clock": "drivers" in verdict["set_by"]},
        process_request_count=process_count,
        verdict={"kind": verdict["kind"], "set_by": [_who(x) for x in verdict["set_by"]],
                 "not_honoured": [_who(x) for x in verdict["not_honoured"]],
                 "ignored": [_who(x) for x in verdict["ignored"]],
                 "expected": verdict["expected"], "expected_ms": ms(verdict["expected"])},
        current=inc.get("current"), maximum=inc.get("maximum"), minimum=inc.get("minimum"),
        current_ms=ms(inc.get("current")), maximum_ms=ms(inc.get("maximum")),
        minimum_ms=ms(inc.get("minimum")))
    if not complete:                     # the request list was cut short (kernel/timers.requests)
        doc["complete"] = False
    return doc


def _pid(pid):
    return "?" if pid is None else "%d (0x%x)" % (pid, pid)


def _res(v):
    if v is None:
        return "?"
    if not v:
        return "-"
    return "0x%x (%.3f ms)" % (v, v / 10000.0)


def _ms(v):
    return "?" if v is None else "%.3f ms" % (v / 10000.0)


def _name(w):
    return "drivers (ExSetTimerResolution)" if w["drivers"] else "%s, PID %s" % (w["process"], _pid(w["pid"]))


def _names(ws):
    return "; ".join(_name(w) for w in ws)


def _asks(r):
    if r["state"] == LIVE and r["requested"] == 0:
        return "0 (the finest)"
    return _res(r["requested"])


def _kernel_line(k):
    if not k["available"]:
        return "drivers (ExSetTimerResolution): not available (no symbol nt!ExpKernelRequestedTimerResolution)"
    count = "" if k["count"] is None else ", %d request%s open" % (k["count"], "" if k["count"] == 1 else "s")
    if not k["live"]:
        return "drivers (ExSetTimerResolution): no request open"
    return "drivers (ExSetTimerResolution): ask for %s%s%s" % (
        _res(k["requested"]), count, ", and set the clock" if k["sets_clock"] else "")


def _verdict_lines(d):
    v, cur = d["verdict"], d["current"]
    kind = v["kind"]
    out = []
    if v["set_by"]:
        out.append(("bad", "CLOCK %s: set by %s." % (_ms(cur), _names(v["set_by"]))))
    if kind == "coarser":
        out.append(("bad", "CLOCK %s is coarser than the live request of %s: that request is not honoured." % (
            _ms(cur), _names(v["not_honoured"]))))
    elif kind == "finer":
        if v["expected"] == d["maximum"]:
            why = "finer than its coarsest (%s) with no live request on the list or from drivers" % _ms(d["maximum"])
        else:
            why = "finer than every live request (the finest asks for %s)" % _ms(v["expected"])
        out.append(("bad", "CLOCK %s is %s: a requester not on the list sets it (a driver through "
                           "ExSetTimerResolution, or a process not on the list)." % (_ms(cur), why)))
    elif kind == "ignored":
        out.append(("bad", "CLOCK %s is coarser than the request of %s: the kernel ignores it "
                           "(TimerResolutionIgnore), and no live request asks finer." % (
                               _ms(cur), _names(v["ignored"]))))
    elif kind == "default":
        out.append((None, "CLOCK %s: its coarsest; nobody asks for a finer one." % _ms(cur)))
    elif kind == "unknown" and not v["set_by"]:
        out.append(("warn", "CLOCK: who sets it is unknown (the clock's interval or its bounds are unread)."))
    for w in (v["ignored"] if kind != "ignored" else []):
        out.append((None, "%s: asks, but the kernel ignores its request (TimerResolutionIgnore)." % _name(w)))
    for r in d["rows"]:
        if r["state"] == STALE and r["smallest"]:
            out.append((None, "%s, PID %s: asked for %s once and no longer asks (not what sets the clock)." % (
                r["process"], _pid(r["pid"]), _ms(r["smallest"]))))
    return out


def render_text(d, out, style, header):
    w = lambda text="": out.write(text + "\n")  # noqa: E731
    s = style
    w(s("head", header))
    write_partial_headline(d, w, s)
    w("clock interval now %s; coarsest %s; finest possible %s" % (
        _res(d["current"]), _res(d["maximum"]), _res(d["minimum"])))
    rows = d["rows"]
    if not rows:
        w("No process was found asking for a finer timer resolution before the interruption."
          if d.get("interrupted") else "No process has asked for a finer timer resolution.")
    else:
        live = sum(1 for r in rows if r["state"] == LIVE)
        table = [[r["process"], _pid(r["pid"]), r["eprocess"], r["state"],
                  _asks(r) if r["state"] in (LIVE, IGNORED) else "-", _res(r["smallest"]),
                  "sets the clock" if r["sets_clock"] else ""] for r in rows]   # no marks in cells
        w()
        w(s("head", "TIMER RESOLUTION REQUESTS (%d), %d live, live finest first" % (len(rows), live)))
        for line in tabulate(table, headers=["process", "PID", "EPROCESS", "state", "asks now", "smallest ever", "clock"],
                             tablefmt="simple", disable_numparse=True).splitlines():
            w("  " + line.rstrip())
    if d.get("interrupted") and not d["kernel"]["available"]:
        w("drivers (ExSetTimerResolution): not read before the interruption")
    else:
        w(_kernel_line(d["kernel"]))
    w()
    for st, line in _verdict_lines(d):
        w(s(st, line) if st else line)
    if d["warnings"]:
        w(s("warn", "WARNINGS (%d): results may be partial" % len(d["warnings"])))
        for x in d["warnings"]:
            w("  - %s" % x["message"])
