"""The `running` report as text: a table of processors, then each busy one's running frames."""
from tabulate import tabulate

from ..analysis.lints import irql_name

from .doc import write_partial_headline


def _irql(c):
    """The IRQL the processor saved (only the one that bug checked saves it), else what its
    stack shows: a DPC or ISR runs at DISPATCH_LEVEL or above; else "-"."""
    if c["irql"] is not None:
        return "%d %s" % (c["irql"], irql_name(c["irql"]))
    kind = c["activity"]
    if kind in ("dpc", "isr"):
        return ">= DISPATCH_LEVEL (runs a%s %s)" % ("n" if kind == "isr" else "", kind.upper())
    return "-"


def render_text(doc, out, style, title):
    w = lambda text="": out.write(text + "\n")
    w(style("head", title))
    write_partial_headline(doc, w, style)
    if doc["bugcheck"]:
        w("bug check %s (%s)" % (doc["bugcheck"]["code"], ", ".join(doc["bugcheck"]["args"])))
    rows = []
    for c in doc["cpus"]:
        what = c["activity"]
        if what in ("dpc", "isr"):
            what = "%s %s" % (what.upper(), c["function"] or "?") + (" (in the idle loop)" if c["idle"] else "")
        if c["spinning_in"]:
            what += ", spinning in %s" % c["spinning_in"]
        if c["bugchecked_here"]:
            what += " (bug check raised here)"
        thread = c["thread"] or "-"
        if c["thread"] and not c["idle"]:
            thread += " %s %s" % (c["process"] or "?", c["cid"] or "")
        rows.append([c["cpu"], c["prcb"], thread, c["next_thread"] or "-",
                     _irql(c), what, c["module"] or ""])
    for line in tabulate(rows, headers=["cpu", "prcb", "current thread", "next (standby)", "irql", "running",
                                        "driver"], tablefmt="simple", disable_numparse=True).splitlines():
        w("  " + line)
    w("  irql: saved only by the processor that bug checked (KPRCB.DebuggerSavedIRQL); other processors "
      "saved none")
    w()
    for c in doc["cpus"]:
        if (c["idle"] and c["activity"] == "idle") or not c["running_frames"]:
            continue
        w("CPU %d: %s" % (c["cpu"], " < ".join(c["running_frames"])))
    if doc["warnings"]:
        w()
        w(style("warn", "WARNINGS (%d): results may be partial" % len(doc["warnings"])))
        for d in doc["warnings"]:
            w("  - %s" % d["message"])
