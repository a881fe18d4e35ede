"""The unique-stacks report: JSON document and text."""
from ..analysis.waitgraph import format_duration
from .doc import document, write_partial_headline


def report_dict(res, target_name, build):
    groups = []
    for g in res.groups:
        lo, hi = g.wait_range()
        groups.append({
            "count": g.count, "module": g.driver, "frames": list(g.frames),
            "states": sorted({t.state for t in g.threads}),
            "wait_reasons": sorted({t.wait_reason for t in g.threads if t.wait_reason}),
            "wait_seconds_min": None if lo is None else round(lo, 3),
            "wait_seconds_max": None if hi is None else round(hi, 3),
            "wait_is_slice": g.slice,
            "processes": sorted({t.process for t in g.threads if t.process}),
            "threads": [{"thread": "0x%x" % t.address, "cid": t.cid, "process": t.process, "state": t.state,
                         "wait_reason": t.wait_reason, "wait_ticks": t.ticks,
                         "wait_seconds": None if t.seconds is None else round(t.seconds, 3),
                         "wait_is_slice": t.slice} for t in g.threads],
        })
    return document("stacks", target_name, build, res.interrupted, res.diagnostics,
                    threads_scanned=res.threads_seen, threads_shown=res.threads_shown, groups=groups)


def render_text(doc, out, style, title):
    w = lambda text="": out.write(text + "\n")
    w(style("head", title))
    write_partial_headline(doc, w, style)
    w("%d of %d threads in %d unique stacks" % (doc["threads_shown"], doc["threads_scanned"], len(doc["groups"])))
    w()
    for i, g in enumerate(doc["groups"], 1):
        waited = ""
        if g["wait_seconds_max"] is not None:
            lo, hi = g["wait_seconds_min"], g["wait_seconds_max"]
            waited = "  %s %s" % ("current wait slice" if g["wait_is_slice"] else "waited",
                                  format_duration(hi) if lo == hi else "%s..%s" % (format_duration(lo),
                                                                                   format_duration(hi)))
        what = "/".join(g["states"]) + ("(%s)" % ",".join(g["wait_reasons"]) if g["wait_reasons"] else "")
        w(style("warn", "%d. %d thread%s" % (i, g["count"], "s" if g["count"] > 1 else "")) +
          "  %s%s  %s%s" % (what, waited, ", ".join(g["processes"]),
                             ("  -- " + style("drv", g["module"])) if g["module"] else ""))
        for f in g["frames"]:
            w("      %s" % f)
        shown = g["threads"][:8]
        w("    threads: %s%s" % (", ".join(style("addr", t["thread"]) for t in shown),
                                 " (+%d more)" % (len(g["threads"]) - len(shown)) if len(g["threads"]) > len(shown) else ""))
        w()
    if doc["warnings"]:
        w(style("warn", "WARNINGS (%d): results may be partial" % len(doc["warnings"])))
        for d in doc["warnings"]:
            w("  - %s" % d["message"])
