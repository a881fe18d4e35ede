"""powerirps: every pending power and PnP IRP -- where it is pending (device, driver, device
stack and node), the threads working on it and where their waits lead, and how long it has
been held -- and, on a bug check 0x9F, the driver to blame.

Examples:
  pykd-ext powerirps --target mock_targets/power_9f4_zteusbnet.json.gz
  pykd-ext powerirps --dump MEMORY.DMP --format json
  !py -m pykd_ext powerirps
"""
from ..analysis.power import analyze_power
from ..render.power import links, render_text, report_dict
from ..kernel.processes import thread_summary
from .common import add_format, emit

NAME = "powerirps"
HELP = "pending power/PnP IRPs and, for bug check 0x9F, the driver to blame"


def add_arguments(p):
    add_format(p)


def run(args, target, out):
    r = analyze_power(target)
    build = target.layouts().build
    doc = report_dict(r, target.name, build, lambda t: thread_summary(target, t))
    return emit(args, out, doc, render_text, lambda: links(r),
                "powerirps -- %s (%s)" % (target.name, build), target)
