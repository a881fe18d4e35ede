"""dpcs: per processor, the queued DPCs (normal and threaded: KDPC, routine, module,
importance), what the processor runs now and its DPC watchdog counters; on bug check 0x133,
the DPC or ISR that ran too long, the driver to blame, and whether it was spinning on a lock.

Examples:
  pykd-ext dpcs --target mock_targets/dpc_133_athwbx.json.gz
  pykd-ext dpcs --dump MEMORY.DMP --format json
  !py -m pykd_ext dpcs
"""
from ..analysis.dpc import analyze_dpcs
from ..render.dpc import links, render_text, report_dict
from ..render.io import render_json
from ..render.style import text_output

NAME = "dpcs"
HELP = "per-processor DPC queues and activity; for bug check 0x133, the driver to blame"


def add_arguments(p):
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text for people (default), json for programs (top-level \"culprit\")")


def run(args, target, out):
    r = analyze_dpcs(target)
    build = target.layouts().build
    doc = report_dict(r, target, build)
    if args.format == "json":
        render_json(doc, out)
        return 0
    style, stream = text_output(out, args.no_color, lambda: links(r))
    render_text(doc, stream, style, "dpcs -- %s (%s)" % (target.name, build))
    return 0
