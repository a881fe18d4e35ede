"""powerirps: every pending power and PnP IRP -- where it is pending (device, driver, device
stack and node), the threads working on it and where their waits lead, and how long it has
been held -- and, on a bug check 0x9F, the driver to blame.

Examples:
  pykd-ext powerirps --target mock_targets/power_9f4_zteusbnet.json.gz
  pykd-ext powerirps --dump MEMORY.DMP --format json
  !py -m pykd_ext powerirps
"""
from ..analysis.power import analyze_power
from ..render.power import links, render_json, render_text, report_dict
from ..render.style import text_output

NAME = "powerirps"
HELP = "pending power/PnP IRPs and, for bug check 0x9F, the driver to blame"


def add_arguments(p):
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text for people (default), json for programs (top-level \"culprit\")")


def run(args, target, out):
    r = analyze_power(target)
    build = target.layouts().build
    doc = report_dict(r, target.name, build)
    if args.format == "json":
        render_json(doc, out)
        return 0
    style, stream = text_output(out, args.no_color, lambda: links(r))
    render_text(doc, stream, style, "powerirps -- %s (%s)" % (target.name, build))
    return 0
