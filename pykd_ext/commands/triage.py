"""triage: the first command on a dump -- reads the bug check (or its absence), runs what
applies (powerirps for 0x9F; dpcs, running and the lock analysis for 0x133/0x101; the lock
analysis for 0x13C/0x162/0xC4; running and locks for 0xA/0xD1; deadlock and stuck IRPs for a
hang or a manual crash), and prints a short verdict first: what happened, the driver to
blame, the evidence, how complete the reading was, and a signature for grouping dumps.

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
from ..render.doc import bugcheck_dict, document, write_partial_headline
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
            out[name] = render_power.report_dict(r, target.name, build)
        elif name == "dpcs":
            out[name] = render_dpc.report_dict(r, target, build)
        elif name == "running":
            out[name] = running_doc(target, r)
    return out


def report(t, target):
    build = target.layouts().build
    v = t.verdict
    sections = _sections(t, target, build)
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
        signature=t.signature, bugcheck=bugcheck_dict(t.bugcheck), route=list(t.route), sections=sections)
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
