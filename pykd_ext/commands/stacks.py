"""stacks: every thread's kernel stack, threads grouped by identical stacks, most common (or
longest waiting) first -- the second look at a hang.  Filters narrow it to a driver, a
function, a state, a wait reason, a process or long waits.

Examples:
  pykd-ext stacks --target mock_targets/hang_no_cycle.json.gz
  pykd-ext stacks --target mock_targets/pushlock_shared_waiters.json.gz --module CacheFlt
  pykd-ext stacks --target mock_targets/hang_no_cycle.json.gz --state Waiting --min-wait 60 --sort wait
  !py -m pykd_ext stacks --wait-reason WrResource --format json
"""
from ..analysis.stacks import Filters, unique_stacks
from ..render.stacks import render_text, report_dict
from .common import add_format, emit

NAME = "stacks"
HELP = "threads grouped by identical stack, with filters (module, function, state, wait reason, process, wait)"


def add_arguments(p):
    add_format(p)
    p.add_argument("--module", help="only stacks with a frame in this module (e.g. CacheFlt or CacheFlt.sys)")
    p.add_argument("--function", help="only stacks with a frame whose symbol contains this text")
    p.add_argument("--state", help="only threads in this state (Waiting, Running, Ready, ...)")
    p.add_argument("--wait-reason", help="only threads waiting for this reason (Executive, WrResource, ...)")
    p.add_argument("--process", help="only threads of processes whose image name contains this text")
    p.add_argument("--min-wait", type=float, metavar="SECONDS",
                   help="only threads waiting at least this long (by KTHREAD.WaitTime)")
    p.add_argument("--sort", choices=("count", "wait"), default="count",
                   help="most threads first (default), or longest wait first")


def run(args, target, out):
    filters = Filters(args.module, args.function, args.state, args.wait_reason, args.process, args.min_wait)
    res = unique_stacks(target, filters, args.sort)
    doc = report_dict(res, target.name, target.layouts().build)
    return emit(args, out, doc, render_text,
                lambda: {int(t["thread"], 16): "!thread %s" % t["thread"] for g in doc["groups"] for t in g["threads"]},
                "stacks -- %s (%s)" % (target.name, target.layouts().build), target)
