"""timerres: which processes raised the timer resolution -- the per-process requests on
nt!ExpTimerResolutionListHead (requested and smallest interval, 100 ns units and ms), finest
first, beside the clock's interval now (KeTimeIncrement) and its coarsest (KeMaximumIncrement).

Examples:
  pykd-ext timerres --target mock_targets/timerres_win81.json.gz
  !py -m pykd_ext timerres --format json
"""
from ..kernel.diag import Diagnostics
from ..kernel.timers import increments, requests
from ..render.timerres import render_text, report_dict
from .common import add_format, emit

NAME = "timerres"
HELP = "processes that raised the timer resolution, finest first"


def add_arguments(p):
    add_format(p)


def run(args, target, out):
    diags = Diagnostics()
    reqs, complete = requests(target, diags)
    inc = increments(target, diags)
    build = target.layouts().build
    return emit(args, out, report_dict(reqs, complete, inc, diags, target.name, build), render_text,
                lambda: {r.process: "!process 0x%x 0" % r.process for r in reqs},
                "timerres -- %s (%s)" % (target.name, build))
