"""triage: the first command on a dump -- reads the bug check (or its absence), runs what
applies (powerirps for 0x9F; dpcs, running and the lock analysis for 0x133/0x101; the lock
analysis for 0x13C/0x162/0xC4; running and locks for 0xA/0xD1; deadlock and stuck IRPs for a
hang or a manual crash), and prints a short verdict first: what happened, the driver to
blame, the evidence, how complete the reading was, and a signature for grouping dumps.  For
0x101 it names the processor parameter 3's PRCB belongs to and what it runs; for 0xA/0xD1 the
faulting module and function, the access and IRQL, and the locks the faulting code holds that
others wait for.  On every target it runs the lints (waits at DISPATCH_LEVEL, a driver unloaded
while it initialises) and says when the clock's resolution is finer or coarser than every live
request.

Examples:
  pykd-ext triage --target mock_targets/power_9f4_zteusbnet.json.gz
  pykd-ext triage --target mock_targets/dpc_133_athwbx.json.gz --format json
  !py -m pykd_ext triage
"""
import io

from ..analysis.triage import triage
from ..render import deadlock as render_deadlock
from ..render import dpc as render_dpc
from ..render import power as render_power
from ..render import running as render_running
from ..render.doc import bugcheck_dict, document, lock_kind, lock_name, write_partial_headline
from ..render.timerres import _verdict_lines as timer_lines, report_dict as timer_dict
from ..kernel.processes import thread_summary
from .common import add_format, emit
from .running import running_doc

NAME = "triage"
HELP = "the first look: the bug check routed to what applies, a verdict first, then the sections"


def add_arguments(p):
    add_format(p)


def _sections(t, target, build):
    out = {}
    for name, r in t.results.items():
        if name == "deadlock":
            out[name] = render_deadlock.to_dict(r, target.name, build)
        elif name == "powerirps":
            out[name] = render_power.report_dict(r, target.name, build, lambda a: thread_summary(target, a))
        elif name == "dpcs":
            out[name] = render_dpc.report_dict(r, target, build)
        elif name == "running":
            out[name] = running_doc(target, r)
    return out


def _hung_doc(t, running):
    """0x101: the hung processor as running shows it, and the spin lock it spins on."""
    h = t.hung
    if h is None:
        return None
    cpu = next((c for c in running["cpus"] if int(c["prcb"], 16) == h.prcb), None) if running else None
    d = {"cpu": h.activity.cpu.index if h.activity is not None else None, "prcb": "0x%x" % h.prcb}
    if cpu is not None:
        for k in ("thread", "cid", "process", "idle", "irql", "activity", "function", "spinning_in",
                  "running_frames", "stack"):
            d[k] = cpu[k]
    d["module"] = h.frame.module.image if h.frame is not None else None
    d["frame"] = h.frame.symbol if h.frame is not None else None
    r = h.spin
    d["spin_lock"] = None if r is None else {
        "lock": None if r.address is None else "0x%x" % r.address, "lock_kind": lock_kind(r.kind),
        "holder": None if r.holder is None else {"cpu": r.holder[0],
                                                 "thread": None if r.holder[1] is None else "0x%x" % r.holder[1],
                                                 "evidence": r.holder[2], "recorded": True},
        "holder_candidates": [{"cpu": c, "thread": "0x%x" % th, "evidence": ev, "recorded": False}
                              for c, th, ev in r.candidates]}
    return d


def _fault_doc(t, target):
    f = t.fault
    if f is None:
        return None
    named = thread_summary(target, f.thread) if f.thread else None
    # "holds" is the vocabulary's [{lock, lock_kind, lock_name, mode}]; the locks the faulting
    # code holds that others wait for carry who waits and how the holding is known, so they are
    # "contended_locks"; "frame" is the faulting instruction as a frame, "function" its function
    return {"address": "0x%x" % f.address, "irql": f.irql, "access": f.access, "ip": "0x%x" % f.ip,
            "module": t.verdict.driver, "function": t.verdict.function, "frame": t.fault_frame, "cpu": f.cpu,
            "thread": None if f.thread is None else "0x%x" % f.thread,
            "cid": named[0] if named else None, "process": named[1] if named else None,
            "contended_locks": [{"lock": "0x%x" % lock, "lock_kind": lock_kind(kind), "lock_name": lock_name(name),
                                 "waiters": others, "evidence": how} for lock, kind, name, others, how in f.holds]}


def _timer_doc(t, target, build):
    tr = t.timer
    if tr is None or not tr.notable:
        return None
    d = timer_dict(tr.reqs, tr.complete, tr.inc, tr.diagnostics, target.name, build, tr.kernel, tr.explain, tr.count)
    # resolutions in 100 ns units, named as timerres names them (not clock ticks)
    return {"kind": tr.explain["kind"], "current": tr.inc.get("current"),
            "expected": tr.explain["expected"], "says": [line for _, line in timer_lines(d)]}


def report(t, target):
    build = target.layouts().build
    v = t.verdict
    sections = _sections(t, target, build)
    running = sections.get("running")
    if t.hung is not None and running is None:
        running = running_doc(target, t.results.get("dpcs"))
    # the run's warnings are its sections' (once each); it was interrupted if one of them was
    warnings, seen = [], set()
    for s in sections.values():
        for w in s["warnings"]:
            key = (w["kind"], w["address"], w["message"])
            if key not in seen:
                seen.add(key)
                warnings.append(w)
    interrupted = next((s["interrupted"] for s in sections.values() if s["interrupted"]), None)
    doc = document(
        "triage", target.name, build, interrupted, warnings,
        verdict={"what": v.what, "module": v.driver, "function": v.function, "evidence": v.evidence,
                 "reading": "complete" if v.complete else "partial", "why_partial": v.why_partial},
        signature=t.signature, bugcheck=bugcheck_dict(t.bugcheck), route=list(t.route),
        hung_processor=_hung_doc(t, running), fault=_fault_doc(t, target),
        lints=[f.as_dict() for f in t.lints.findings] if t.lints is not None else [],
        timer_resolution=_timer_doc(t, target, build), sections=sections)
    if not v.complete:
        doc["complete"] = False
    return doc


def run(args, target, out):
    t = triage(target)
    doc = report(t, target)

    def render_text(d, stream, style, title):
        w = lambda text="": stream.write(text + "\n")
        w(style("head", title))
        write_partial_headline(d, w, style)
        v = d["verdict"]
        if d["bugcheck"]:
            bc = d["bugcheck"]
            w("bug check %s %s (%s)" % (bc["code"], bc["name"] or bc["code"].upper().replace("0X", "0x"),
                                        ", ".join(bc["args"])))
        else:
            w("no bug check: read as a hang")
        w(style("bad", "VERDICT: ") + v["what"])
        w("  driver to look at: %s" % (style("drv", v["module"]) if v["module"] else "not named"))
        if v["evidence"]:
            w("  evidence: %s" % "; ".join(v["evidence"]))
        w("  reading: %s%s" % (v["reading"], (" (%s)" % "; ".join(v["why_partial"])) if v["why_partial"] else ""))
        w("  signature: %s" % d["signature"])
        w()
        if d["lints"]:
            w(style("head", "== lints =="))
            for x in d["lints"]:
                w(style("bad", "%s" % x["lint"]) + " in %s" % (style("drv", x["module"]) if x["module"] else "?"))
                for e in x["evidence"]:
                    w("  %s" % e)
                w("  why: %s" % x["why"])
                w("  read: %s" % x["read"])
            w()
        if d["timer_resolution"]:
            w(style("head", "== timer resolution =="))
            for line in d["timer_resolution"]["says"]:
                w(line)
            w()
        for name in d["route"]:
            r = t.results[name]
            w(style("head", "== %s ==" % name))
            buf = io.StringIO()
            if name == "deadlock":
                render_deadlock.render_text(r, buf, style, "deadlock -- %s" % target.name)
            elif name == "powerirps":
                render_power.render_text(d["sections"][name], buf, style, "powerirps -- %s" % target.name)
            elif name == "dpcs":
                render_dpc.render_text(d["sections"][name], buf, style, "dpcs -- %s" % target.name)
            elif name == "running":
                render_running.render_text(d["sections"][name], buf, style, "running -- %s" % target.name)
            stream.write(buf.getvalue())
            w()

    return emit(args, out, doc, render_text, lambda: {}, "triage -- %s (%s)" % (target.name, doc["build"]), target)
