"""timerres: which processes raised the timer resolution -- the per-process requests on
nt!ExpTimerResolutionListHead (requested and smallest interval, 100 ns units and ms), finest
first, beside the clock's interval now (KeTimeIncrement) and its coarsest (KeMaximumIncrement).

Examples:
  pykd-ext timerres --target mock_targets/timerres_win81.json.gz
  !py -m pykd_ext timerres --format json
"""
from ..kernel.diag import Diagnostics
from ..kernel.timers import increments, requests
from ..render.io import render_json
from ..render.style import text_output
from ..render.timerres import render_text, report_dict

NAME = "timerres"
HELP = "processes that raised the timer resolution, finest first"


def add_arguments(p):
    p.add_argument("--format", choices=("text", "json"), default="text")


def run(args, target, out):
    diags = Diagnostics()
    reqs, complete = requests(target, diags)
    inc = increments(target, diags)
    doc = report_dict(reqs, complete, inc, diags, target.name, target.layouts().build)
    if args.format == "json":
        render_json(doc, out)
        return 0
    links = {r.process: "!process 0x%x 0" % r.process for r in reqs}
    style, stream = text_output(out, args.no_color, lambda: links)
    render_text(doc, stream, style, "timerres -- %s (%s)" % (target.name, target.layouts().build))
    return 0
