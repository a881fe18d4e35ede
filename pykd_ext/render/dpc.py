"""Renderers of the DPC analysis: the plain-data document (JSON) and text drawn from it."""
from tabulate import tabulate

from ..analysis.dpc import routine_name
from .doc import bugcheck_dict, document, hx, write_partial_headline
from .style import wrap

SCHEDULER = ("nt!kiswapcontext", "nt!kiswapthread", "nt!kicommitthreadwait")


# the processor's DPC watchdog counters (kernel/dpc.WATCHDOG_FIELDS), clock ticks all: the JSON
# names raw tick counts *_ticks (README: "JSON output")
WATCHDOG_KEYS = {"dpc_time_count": "dpc_time_ticks", "dpc_time_limit": "dpc_time_limit_ticks",
                 "watchdog_count": "watchdog_ticks", "watchdog_period": "watchdog_period_ticks"}


def _frame(f):
    return None if f is None else f.symbol


def report_dict(r, target, build):
    describe = target.describe
    cpus = []
    for act in r.cpus:
        c = act.cpu
        s = act.segment
        queues = []
        for q in c.queues:
            queues.append({
                "kind": q.kind, "depth": q.depth, "count": q.count, "complete": q.complete,
                "active_dpc": hx(q.active) if q.active else None,
                "dpcs": [{"kdpc": hx(d.address), "readable": d.readable, "type": d.type,
                          "routine": hx(d.routine) if d.readable else None,
                          "symbol": describe(d.routine) if d.readable and d.routine else None,
                          "module": _module(target, d.routine) if d.readable else None,
                          "importance": d.importance.lower() if d.importance else None, "number": d.number,
                          "context": hx(d.context) if d.readable else None,
                          "reached_via": d.via} for d in q.dpcs]})
        cpus.append({
            "cpu": c.index, "prcb": hx(c.prcb), "readable": c.readable,
            "thread": hx(c.current_thread) if c.current_thread else None, "cid": act.thread_cid,
            "process": act.thread_process, "idle": c.idle,
            "current_dpc_routine": hx(c.current_dpc_routine) if c.current_dpc_routine else None,
            "current_dpc_symbol": describe(c.current_dpc_routine) if c.current_dpc_routine else None,
            "dpc_routine_active": c.dpc_routine_active,
            "watchdog": {WATCHDOG_KEYS[k]: v for k, v in c.watchdog.items()},
            "bugchecked_here": act.bugchecked, "draining_dpcs": act.in_dpc,
            "running": None if s is None else {
                "kind": s.kind.lower() if s.kind else None, "function": routine_name(s.routine),
                "frame": _frame(s.driver),
                "module": s.driver.module.image if s.driver is not None else None,
                "spinning_in": s.spin.function if s.spin is not None else None},
            "stack": [f.symbol for f in act.frames],
            "queues": queues})
    bc = r.bugcheck
    c = r.culprit
    return document(
        "dpcs", target.name, build, r.interrupted, r.diagnostics,
        bugcheck=bugcheck_dict(bc),
        culprit=None if c is None else {
            "module": c.module, "function": c.routine, "cpu": c.cpu, "reason": c.reason,
            "spinning": c.spinning, "could_hold_the_lock": c.holders},
        cpus=cpus)


def _module(target, address):
    m = target.module_at(address) if address else None
    return m.image if m is not None else None


def links(r):
    out = {}
    for act in r.cpus:
        c = act.cpu
        if c.current_thread:
            out[c.current_thread] = "!thread 0x%x" % c.current_thread
        out[c.prcb] = "!prcb %d" % c.index
        for q in c.queues:
            for d in q.dpcs:
                out[d.address] = "dt nt!_KDPC 0x%x" % d.address
                if d.routine:
                    out[d.routine] = "u 0x%x" % d.routine
    return out


def render_text(d, out, style, header):
    w = lambda text="": out.write(text + "\n")  # noqa: E731
    s = style
    w(s("head", header))
    write_partial_headline(d, w, s)
    bc = d["bugcheck"]
    if bc is not None and bc["code"] == "0x133":
        a = [int(x, 16) for x in bc["args"]]
        if a[0] == 0:
            w(s("bad", "BUG CHECK 0x133 DPC_WATCHDOG_VIOLATION, arg1 0: a single DPC or ISR exceeded its time "
                "allotment"))
            w("  DPC time count 0x%x ticks, allotment 0x%x ticks" % (a[1], a[2]))
        elif a[0] == 1:
            w(s("bad", "BUG CHECK 0x133 DPC_WATCHDOG_VIOLATION, arg1 1: the system spent too long at "
                "DISPATCH_LEVEL or above, cumulatively"))
            w("  watchdog period 0x%x ticks" % a[1])
        else:
            w(s("bad", "BUG CHECK 0x133 DPC_WATCHDOG_VIOLATION, arg1 0x%x" % a[0]))
    elif bc is not None:
        w("bug check %s: not a DPC watchdog violation; the queues are listed, nothing is blamed" % bc["code"])
    c = d["culprit"]
    if c is not None:
        w()
        w(s("bad", "CULPRIT: %s" % (s("drv", c["module"]) if c["module"] else "no driver can be named")))
        for line in wrap(c["reason"], 96):
            w("  " + line)
    w()
    rows = []
    for x in d["cpus"]:
        run = x["running"] or {}
        doing = "idle" if x["idle"] and not x["draining_dpcs"] else (
            "DPC %s" % run["function"] if run.get("kind") == "dpc" else
            "ISR %s" % run["function"] if run.get("kind") == "isr" else _top(x["stack"]) or "?")
        if run.get("spinning_in"):
            doing += "  [spinning in %s]" % run["spinning_in"]
        depth = "/".join(str(q["depth"]) if q["depth"] is not None else "?" for q in x["queues"])
        wd = x["watchdog"]
        rows.append(["%d%s" % (x["cpu"], "*" if x["bugchecked_here"] else ""), x["thread"],
                     "%s %s" % (x["cid"] or "", x["process"] or ""), doing, depth,
                     _pair(wd, "dpc_time_ticks", "dpc_time_limit_ticks"),
                     _pair(wd, "watchdog_ticks", "watchdog_period_ticks")])
    w(s("head", "PROCESSORS (%d)%s" % (len(rows), "  * bug checked here" if any(x["bugchecked_here"] for x in d["cpus"])
                                       else "")))
    for line in tabulate(rows, headers=["CPU", "thread", "Cid process", "running now", "queued n/t",
                                        "DPC time/limit", "watchdog/period"], tablefmt="simple", disable_numparse=True).splitlines():
        w("  " + line)
    qrows = []
    for x in d["cpus"]:
        for q in x["queues"]:
            for dpc in q["dpcs"]:
                qrows.append([x["cpu"], "Normal" if q["kind"] == "normal" else "Threaded", dpc["kdpc"],
                              (dpc["symbol"] or dpc["routine"]) if dpc["readable"] else "unreadable",
                              dpc["module"] or "", (dpc["importance"] or "").capitalize(),
                              dpc["reached_via"] and "via %s" % dpc["reached_via"] or ""])
    w()
    w(s("head", "QUEUED DPCs (%d)" % len(qrows)))
    if qrows:
        headers = ["CPU", "type", "KDPC", "routine", "module", "importance", "reached"]
        if not any(r[-1] for r in qrows):       # every entry reached the usual way: no column for it
            headers, qrows = headers[:-1], [r[:-1] for r in qrows]
        for line in tabulate(qrows, headers=headers, tablefmt="simple", disable_numparse=True).splitlines():
            w("  " + line)
    for x in d["cpus"]:
        if x["bugchecked_here"] and x["stack"]:
            w()
            w(s("head", "CPU %d STACK (bug checked here)" % x["cpu"]))
            for f in x["stack"]:
                w("  " + f)
    if d["warnings"]:
        w(s("warn", "WARNINGS (%d): results may be partial" % len(d["warnings"])))
        for x in d["warnings"]:
            w("  - %s" % x["message"])


def _top(stack):
    for f in stack:
        if f.split("+")[0].lower() not in SCHEDULER:
            return f
    return None


def _pair(wd, a, b):
    if a not in wd and b not in wd:
        return ""
    return "%s/%s" % (hex(wd[a]) if a in wd else "?", hex(wd[b]) if b in wd else "?")

