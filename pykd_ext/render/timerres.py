"""Renderers of the timer-resolution table: JSON document and text."""
from tabulate import tabulate

from .deadlock import hx


def ms(v):
    return None if v is None else round(v / 10000.0, 4)


def report_dict(reqs, complete, inc, diags, target_name, build):
    rows = sorted(reqs, key=lambda r: (r.finest is None, r.finest or 0, r.pid or 0))
    finest = min((r.finest for r in rows if r.finest), default=None)
    return {
        "target": target_name, "build": build,
        "rows": [{"process": r.name, "pid": r.pid, "eprocess": hx(r.process),
                  "requested": r.requested, "smallest": r.smallest,
                  "requested_ms": ms(r.requested) if r.requested else None,
                  "smallest_ms": ms(r.smallest) if r.smallest else None,
                  "finest": finest is not None and r.finest == finest,
                  "readable": r.readable} for r in rows],
        "current": inc.get("current"), "maximum": inc.get("maximum"), "minimum": inc.get("minimum"),
        "current_ms": ms(inc.get("current")), "maximum_ms": ms(inc.get("maximum")),
        "minimum_ms": ms(inc.get("minimum")),
        "warnings": [d.as_dict() for d in diags], "complete": complete,
    }


def _pid(pid):
    return "?" if pid is None else "%d (0x%x)" % (pid, pid)


def _res(v):
    if v is None:
        return "?"
    if not v:
        return "-"
    return "0x%x (%.3f ms)" % (v, v / 10000.0)


def render_text(d, out, style, header):
    w = lambda text="": out.write(text + "\n")  # noqa: E731
    s = style
    w(s("head", header))
    w("clock interval now %s; coarsest %s; finest possible %s" % (
        _res(d["current"]), _res(d["maximum"]), _res(d["minimum"])))
    rows = d["rows"]
    if not rows:
        w("No process has asked for a finer timer resolution.")
    else:
        table = [[r["process"], _pid(r["pid"]), r["eprocess"], _res(r["requested"]),
                  _res(r["smallest"]), "finest" if r["finest"] else ""] for r in rows]   # no marks in cells
        w()
        w(s("head", "TIMER RESOLUTION REQUESTS (%d), finest first" % len(rows)))
        for line in tabulate(table, headers=["process", "PID", "EPROCESS", "requested", "smallest", ""],
                             tablefmt="simple").splitlines():
            w("  " + line)
        finest = [r for r in rows if r["finest"]]
        if finest:
            vals = [v for r in finest for v in (r["requested"], r["smallest"]) if v]
            f = min(vals)
            names = "; ".join("%s, PID %s" % (r["process"], _pid(r["pid"])) for r in finest)
            held = ", and the clock runs at it now" if d["current"] == f else ""
            w()
            w(s("bad", "%s: %s for the finest interval, %.3f ms%s." % (
                names, "asked" if len(finest) == 1 else "each asked", f / 10000.0, held)))
    if d["warnings"]:
        w(s("warn", "WARNINGS (%d): results may be partial" % len(d["warnings"])))
        for x in d["warnings"]:
            w("  - %s" % x["message"])
