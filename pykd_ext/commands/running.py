"""running: what every processor runs now -- like `!running -ti`: its current thread (process,
Cid) or idle loop, whether it is in a DPC or an ISR and which routine, the IRQL the processor
that bug checked saved (KPRCB.DebuggerSavedIRQL; no other processor saves one, so theirs is
null -- analysis/dpc.py recorded_irql), the thread chosen to run next (Standby), whether it is
spinning on a spin lock, and the top of its stack.

Examples:
  pykd-ext running --target mock_targets/dpc_133_athwbx.json.gz
  pykd-ext running --target mock_targets/spinlock_queued_abba.json.gz --format json
  !py -m pykd_ext running
"""
from ..analysis.dpc import analyze_dpcs, recorded_irql, routine_name
from ..analysis.spinlocks import PLAIN, QUEUED, SKIP
from ..errors import MemoryFault
from ..render.doc import bugcheck_dict, document
from ..render.running import render_text
from .common import add_format, emit

NAME = "running"
HELP = "what every processor runs: thread or idle, DPC or ISR, IRQL, next thread, spinning, stack"
TOP = 6


def _spinning(frames):
    """The spin-lock acquire a processor's code sits in, under only yield and scheduler frames."""
    for f in frames:
        fn = (f.function or "").lower()
        if fn in SKIP:
            continue
        return f.function if fn in PLAIN or fn in QUEUED else None
    return None


def add_arguments(p):
    add_format(p)


def run(args, target, out):
    doc = running_doc(target)
    cpus = doc["cpus"]
    return emit(args, out, doc, render_text,
                lambda: {int(c["thread"], 16): "!thread %s" % c["thread"] for c in cpus if c["thread"]},
                "running -- %s (%s)" % (target.name, doc["build"]), target)


def running_doc(target, r=None):
    """The running report as a document (`r`: an analyze_dpcs report already made)."""
    r = r if r is not None else analyze_dpcs(target)
    cpus = []
    for act in r.cpus:
        c = act.cpu
        s = act.segment
        try:
            irql = recorded_irql(target, c.prcb, act.frames)
        except MemoryFault:
            irql = None
        idle = c.idle
        kind = s.kind if s is not None and s.kind else None
        # one lower-case word (the JSON vocabulary): a DPC or ISR, else the idle loop or a thread;
        # "idle" beside it says whether the idle thread is the current one
        what = kind.lower() if kind else ("idle" if idle else "thread")
        running_frames = s.frames if s is not None and s.frames else act.frames
        frames = [f.symbol for f in running_frames]
        cpus.append({
            "cpu": c.index, "prcb": "0x%x" % c.prcb, "readable": c.readable,
            "thread": "0x%x" % c.current_thread if c.current_thread else None,
            "cid": act.thread_cid, "process": act.thread_process,
            "next_thread": "0x%x" % c.next_thread if c.next_thread else None,
            "idle": idle, "irql": irql, "activity": what,
            "function": routine_name(s.routine) if s is not None and s.kind else None,
            "module": s.driver.module.image if s is not None and s.driver is not None else None,
            "spinning_in": _spinning(running_frames) if not (idle and not kind) else None,
            "bugchecked_here": act.bugchecked,
            "stack": [f.symbol for f in act.frames][:64], "running_frames": frames[:TOP],
        })
    return document("running", target.name, target.layouts().build, r.interrupted, r.diagnostics,
                    bugcheck=bugcheck_dict(r.bugcheck), cpus=cpus)
