"""Unique stacks: every thread's kernel stack, threads grouped by identical stacks (the same
frames, displacement included, as !uniqstack / mex's `us` group them), with filters on module,
function, state, wait reason, process and wait time.  For the second look at a hang, when
1,200 threads in `!process 0 7` are too many to read."""
from ..kernel.diag import Diagnostics
from ..kernel.processes import all_threads
from ..kernel.stacks import first_driver_frame, frames as stack_frames
from ..progress import report, stopped
from .waitgraph import current_tick

MAX_FRAMES = 64


class Group(object):
    """Threads with one stack.  frames: symbols innermost first; threads: [ThreadRow]."""

    def __init__(self, frames):
        self.frames = frames
        self.threads = []
        self.driver = None

    @property
    def count(self):
        return len(self.threads)

    @property
    def slice(self):
        return any(t.slice for t in self.threads)

    def wait_range(self):
        w = [t.seconds for t in self.threads if t.seconds is not None]
        return (min(w), max(w)) if w else (None, None)


class ThreadRow(object):
    __slots__ = ("address", "cid", "process", "state", "wait_reason", "ticks", "seconds", "slice")


class Filters(object):
    def __init__(self, module=None, function=None, state=None, wait_reason=None, process=None, min_wait=None):
        self.module = module.lower() if module else None
        self.function = function.lower() if function else None
        self.state = state.lower() if state else None
        self.wait_reason = wait_reason.lower() if wait_reason else None
        self.process = process.lower() if process else None
        self.min_wait = min_wait

    def thread_ok(self, row):
        """The cheap filters, before a stack is unwound."""
        if self.state and (row.state or "").lower() != self.state:
            return False
        if self.wait_reason and (row.wait_reason or "").lower() != self.wait_reason:
            return False
        if self.process and self.process not in (row.process or "").lower():
            return False
        if self.min_wait is not None and (row.seconds is None or row.seconds < self.min_wait):
            return False
        return True

    def stack_ok(self, frames):
        if self.module and not any(f.module is not None and self.module in
                                   (f.module.name.lower(), f.module.image.lower()) for f in frames):
            return False
        if self.function and not any(self.function in (f.symbol or "").lower() for f in frames):
            return False
        return True


class Result(object):
    def __init__(self):
        self.groups = []
        self.diagnostics = Diagnostics()
        self.threads_seen = 0
        self.threads_shown = 0
        self.interrupted = None


def unique_stacks(target, filters, sort="count"):
    res = Result()
    diags = res.diagnostics
    try:
        _collect(target, filters, res)
    except (KeyboardInterrupt, SystemExit) as e:
        res.interrupted = stopped(target, e)
        diags.add("interrupted", "interrupted (%s): the stacks below were read before it" % res.interrupted)
    key = (lambda g: (-g.count, g.frames)) if sort == "count" else \
        (lambda g: (-(g.wait_range()[1] or -1), -g.count, g.frames))
    res.groups.sort(key=key)
    return res


def _collect(target, filters, res):
    diags = res.diagnostics
    procs, threads, d = all_threads(target)
    diags.extend(d)
    states = target.layouts().enum_names("_KTHREAD_STATE")
    reasons = target.layouts().enum_names("_KWAIT_REASON")
    tick, inc = current_tick(target, diags)
    groups = {}
    for i, t in enumerate(threads):
        if not i & 0xff:
            report(target, "threads' stacks read", i)
        res.threads_seen += 1
        row = ThreadRow()
        row.address, row.cid = t.address, t.cid
        row.process = t.process.name if t.process else None
        row.state = states.get(t.state, "State%s" % t.state)
        row.wait_reason = reasons.get(t.wait_reason, "WaitReason%s" % t.wait_reason) if row.state == "Waiting" else None
        row.ticks = row.seconds = None
        row.slice = False
        if tick is not None and row.state == "Waiting":
            row.ticks = (tick - t.wait_time) & 0xFFFFFFFF
            row.seconds = row.ticks * inc / 1e7
        if not filters.thread_ok(row):
            continue
        fr = stack_frames(target, t.address)[:MAX_FRAMES]
        if not filters.stack_ok(fr):
            continue
        # a resource waiter's WaitTime is the start of its current 0.5 s / 4 s re-wait only
        # (ExpWaitForResource; pykd_ext/SEMANTICS.md)
        row.slice = row.state == "Waiting" and any((f.function or "").lower() == "nt!expwaitforresource"
                                                   for f in fr)
        key = tuple(f.symbol for f in fr)
        g = groups.get(key)
        if g is None:
            g = groups[key] = Group(list(key))
            drv = first_driver_frame(fr)
            g.driver = drv.module.image if drv else None
            res.groups.append(g)
        g.threads.append(row)
        res.threads_shown += 1
