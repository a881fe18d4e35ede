"""timerres: who sets the timer resolution -- the per-process requests on
nt!ExpTimerResolutionListHead, each live (asks now), ignored (TimerResolutionIgnore) or stale
(asked once: its smallest interval is history), live finest first; the drivers' request
(nt!ExpKernelRequestedTimerResolution, ExSetTimerResolution); the clock's interval now
(KeTimeIncrement), coarsest (KeMaximumIncrement) and finest (KeMinimumIncrement); and a verdict:
set by which requester, or finer than every live request (a requester not on the list), or
coarser than a live request (not honoured).

Examples:
  pykd-ext timerres --target mock_targets/timerres_win81.json.gz
  !py -m pykd_ext timerres --format json
"""
from ..kernel.diag import Diagnostics
from ..kernel.timers import explain, increments, kernel_request, process_request_count, requests
from ..render.timerres import render_text, report_dict
from ..progress import stopped
from .common import add_format, emit

NAME = "timerres"
HELP = "who sets the timer resolution: live, ignored and stale requests, drivers', the verdict"


def add_arguments(p):
    add_format(p)


def run(args, target, out):
    diags = Diagnostics()
    reqs, complete, inc, count, interrupted = [], True, {}, None, None
    kernel = {"available": False, "requested": None, "count": None, "live": None}    # not read (yet)
    try:
        reqs, complete = requests(target, diags)
        inc = increments(target, diags)
        kernel = kernel_request(target, diags)
        count = process_request_count(target, diags)
    except (KeyboardInterrupt, SystemExit) as e:      # what was read before the stop is reported
        interrupted = stopped(target, e)
        diags.add("interrupted", "interrupted (%s): the requests below were read before it" % interrupted)
        complete = False
    build = target.layouts().build
    doc = report_dict(reqs, complete, inc, diags, target.name, build, kernel, explain(reqs, kernel, inc), count,
                      interrupted)
    return emit(args, out, doc, render_text,
                lambda: {r.process: "!process 0x%x 0" % r.process for r in reqs},
                "timerres -- %s (%s)" % (target.name, build), target)
