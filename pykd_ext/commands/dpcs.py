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
from .common import add_format, emit

NAME = "dpcs"
HELP = "per-processor DPC queues and activity; for bug check 0x133, the driver to blame"


def add_arguments(p):
    add_format(p)


def run(args, target, out):
    r = analyze_dpcs(target)
    build = target.layouts().build
    return emit(args, out, report_dict(r, target, build), render_text, lambda: links(r),
                "dpcs -- %s (%s)" % (target.name, build), target)
