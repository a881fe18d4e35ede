"""Per-processor DPC queues and activity, and who to blame for bug check 0x133.

    r = analyze_dpcs(target)
    r.cpus        [CpuActivity]: queues, current thread, what it is running now, its stack
    r.culprit     DpcCulprit or None

0x133 arg1 0 (one DPC or ISR ran past its allotment): on the processor that bug checked, the
frames the watchdog's clock interrupt interrupted are the DPC or ISR that ran too long; they
end at the DPC dispatcher (KiExecuteAllDpcs, KiRetireDpcList) or the interrupt dispatch.  The
innermost non-kernel module among them is the driver to blame, and when the innermost of
them is a spin-lock acquire the DPC was spinning on a lock some other processor holds.
arg1 1 (too long at DISPATCH_LEVEL or above, cumulatively): every processor's activity and
queue, and what the bug-checking processor was running when the watchdog fired.
"""
from ..errors import MemoryFault
from ..kernel.diag import Diagnostics
from ..kernel.dpc import cpus as read_cpus
from ..kernel.processes import decode_process, decode_thread
from ..kernel.spinlocks import saved_irql
from ..kernel.stacks import KERNEL_MODULES, frames as stack_frames
from ..progress import stopped

BUGCHECK_133 = 0x133
BUGCHECK_FRAMES = ("nt!kebugcheckex", "nt!kebugcheck2", "nt!kebugcheck")
DPC_DISPATCH = ("nt!kiexecutealldpcs", "nt!kiretiredpclist", "nt!kxretiredpclist", "nt!kiexecutedpc",
                "nt!kiprocessdpclist")
SPIN_ACQUIRE = ("nt!keacquirespinlockraisetodpc", "nt!kxwaitforspinlockandacquire", "nt!keacquirespinlockatdpclevel",
                "nt!kfacquirespinlock", "hal!kfacquirespinlock", "nt!kxacquirespinlock",
                "nt!keacquireinstackqueuedspinlock", "nt!keacquireinstackqueuedspinlockatdpclevel",
                "nt!kxwaitforlockownership", "nt!keacquirespinlockexclusiveatdpclevel",
                "nt!exacquirespinlockexclusive", "nt!exacquirespinlockshared", "nt!exacquirespinlockexclusiveatdpclevel",
                "nt!exacquirespinlocksharedatdpclevel", "nt!kiacquirespinlockinstrumented")
SCHEDULER = ("nt!kiswapcontext", "nt!kiswapthread", "nt!kicommitthreadwait")


def _fn(frame):
    return (frame.function or frame.symbol or "").lower()


def bugchecked(frames):
    """The stack is of a processor that bug checked: KeBugCheckEx / KeBugCheck2 on it."""
    return any(_fn(f) in BUGCHECK_FRAMES for f in frames)


def recorded_irql(target, prcb, frames):
    """The IRQL processor `prcb` saved, or None where it saved none that is current -- the one
    place the code reads KPRCB.DebuggerSavedIRQL (pykd_ext/SEMANTICS.md, "Spin locks").

    Only the processor that writes the field saves it: the one that bug checks (ReactOS
    ntoskrnl/ke/bug.c KeBugCheckWithTf: `Prcb->DebuggerSavedIRQL = KeGetCurrentIrql();` on the
    bug-checking processor, before it raises; Microsoft, !irql: "the IRQL saved in the crash
    dump file is the one immediately prior to the bug check") or the one that breaks into the
    debugger (ReactOS ntoskrnl/kd64/kdapi.c KdEnterDebugger: `KeGetCurrentPrcb()->
    DebuggerSavedIRQL = KeGetCurrentIrql();`, then KeFreezeExecution freezes the others, which
    write nothing).  Every other processor's field is whatever an earlier break or bug check
    left there.  So it is believed only for a processor whose stack (`frames`) shows the bug
    check.  On a live break with no bug check the target protocol does not say which processor
    broke in (pykd's getCurrentThread / getCurrentThreadId, ivellioscolin/pykd pykd/pymod.cpp,
    name the debugger's current processor, which `~Ns` changes: not the one that broke in), so
    none is believed.  MemoryFault propagates."""
    if not bugchecked(frames):
        return None
    return saved_irql(target, prcb)


def _is_interrupt_dispatch(frame):
    f = _fn(frame)
    return f.startswith("nt!kiinterruptdispatch") or f.startswith("nt!kiinterruptsubdispatch") or \
        f == "nt!kicallinterruptserviceroutine"


def _is_kernel(frame):
    return frame.module is not None and frame.module.name.lower() in KERNEL_MODULES


class Segment(object):
    """What a processor was running at DISPATCH_LEVEL or above, cut out of its stack:
    kind ("DPC", "ISR" or None), frames (innermost first), routine (the DPC or ISR routine's
    frame), driver (innermost non-kernel frame), spin (the spin-lock acquire frame on top)."""
    __slots__ = ("kind", "frames", "routine", "driver", "spin")

    def __init__(self):
        self.kind = None
        self.frames = []
        self.routine = self.driver = self.spin = None


def running_segment(frames):
    b = next((i for i, f in enumerate(frames) if _fn(f) in BUGCHECK_FRAMES), None)
    start = 0 if b is None else b + 1
    # on the bug-checking processor, the clock interrupt that ran the watchdog sits on top of
    # what it interrupted: skip to just past its dispatch frames
    for i in range(start, len(frames) if b is not None else 0):
        if _is_interrupt_dispatch(frames[i]):
            j = i
            while j + 1 < len(frames) and _is_interrupt_dispatch(frames[j + 1]):
                j += 1
            start = j + 1
            break
    s = Segment()
    end = next((i for i in range(start, len(frames)) if _fn(frames[i]) in DPC_DISPATCH), None)
    if end is not None:
        s.kind = "DPC"
    else:
        end = next((i for i in range(start, len(frames)) if _is_interrupt_dispatch(frames[i])), None)
        if end is not None:
            s.kind = "ISR"
    s.frames = frames[start:end] if end is not None else frames[start:]
    if s.kind and s.frames:
        s.routine = s.frames[-1]
    s.driver = next((f for f in s.frames if f.module is not None and not _is_kernel(f)), None)
    top = next((f for f in s.frames if _fn(f) not in SCHEDULER), None)
    if top is not None and _fn(top) in SPIN_ACQUIRE:
        s.spin = top
    return s


class CpuActivity(object):
    __slots__ = ("cpu", "frames", "thread_cid", "thread_process", "segment", "bugchecked", "in_dpc")

    def __init__(self, cpu):
        self.cpu = cpu
        self.frames = []
        self.thread_cid = self.thread_process = None
        self.segment = None
        self.bugchecked = False
        self.in_dpc = False


class DpcCulprit(object):
    __slots__ = ("module", "routine", "cpu", "reason", "spinning", "holders")

    def __init__(self, module, routine, cpu, reason, spinning=False, holders=()):
        self.module, self.routine, self.cpu, self.reason = module, routine, cpu, reason
        self.spinning = spinning
        self.holders = list(holders)     # CPU indexes that could hold the lock


class DpcReport(object):
    def __init__(self):
        self.bugcheck = None
        self.cpus = []
        self.culprit = None
        self.diagnostics = Diagnostics()
        self.interrupted = None

    @property
    def arg1(self):
        return self.bugcheck.args[0] if self.bugcheck is not None and self.bugcheck.code == BUGCHECK_133 else None


def analyze_dpcs(target):
    r = DpcReport()
    try:
        r.bugcheck = target.bugcheck()
        for c in read_cpus(target, r.diagnostics):
            act = CpuActivity(c)
            r.cpus.append(act)
            _activity(target, act, r.diagnostics)
    except (KeyboardInterrupt, SystemExit) as e:
        r.interrupted = stopped(target, e)
        r.diagnostics.add("interrupted", "interrupted (%s): the results below cover what was read before"
                          % r.interrupted)
    if not r.cpus and r.interrupted is None:      # after a stop, none read is not a missing symbol
        r.diagnostics.add("missing-symbol", "no processor could be read (nt!KiProcessorBlock)")
    r.culprit = _blame(r)
    return r


def _activity(target, act, diags):
    c = act.cpu
    if not c.current_thread:
        return
    try:
        t = decode_thread(target, c.current_thread, None)
        act.thread_cid = t.cid
        act.thread_process = decode_process(target, t.view["Process"]).name if t.view["Process"] else None
    except MemoryFault as e:
        diags.add("unreadable", "CPU %d: current thread 0x%x is unreadable" % (c.index, c.current_thread),
                  e.address)
    act.frames = stack_frames(target, c.current_thread)
    act.bugchecked = bugchecked(act.frames)
    act.in_dpc = any(_fn(f) in DPC_DISPATCH for f in act.frames)
    act.segment = running_segment(act.frames)


def _symbol(frame):
    return frame.symbol if frame is not None else None


def routine_name(frame):
    """A DPC or ISR routine as its function (`ndis!ndisInterruptDpc`), else the frame's symbol."""
    if frame is None:
        return None
    return frame.function or frame.symbol


def _blame(r):
    a1 = r.arg1
    if a1 is None:
        return None
    bc = r.bugcheck
    at = next((x for x in r.cpus if x.bugchecked), None)
    if at is None:
        return DpcCulprit(None, None, None, "Bug check 0x133: no processor's stack shows the bug check, so the "
                          "DPC or ISR that ran too long cannot be named.")
    s = at.segment
    mod = s.driver.module.image if s.driver is not None else None
    routine = routine_name(s.routine)
    what = ("the DPC %s" % routine if s.kind == "DPC" else "the ISR %s" % routine if s.kind == "ISR"
            else "code at %s" % (_symbol(s.frames[0]) if s.frames else "an unknown place"))
    where = " in %s (%s)" % (mod, _symbol(s.driver)) if mod else ""
    holders = []
    if a1 == 0:
        head = "A single %s ran past its allotment (0x%x ticks against 0x%x)" % (
            s.kind or "DPC or ISR", bc.args[1], bc.args[2])
        body = "CPU %d was running %s%s" % (at.cpu.index, what, where)
    else:
        head = ("The system spent too long at DISPATCH_LEVEL or above, cumulatively (watchdog period 0x%x ticks)"
                % bc.args[1])
        body = "when the watchdog fired CPU %d was running %s%s" % (at.cpu.index, what, where)
    spinning = s.spin is not None
    if spinning:
        holders = [x.cpu.index for x in r.cpus if x is not at and (not x.cpu.idle or x.in_dpc)]
        body += ", spinning on a spin lock in %s" % s.spin.function
        if holders:
            body += " that %s %s could hold" % ("CPU" if len(holders) == 1 else "CPUs",
                                                ", ".join(str(h) for h in holders))
        else:
            body += "; no other processor is busy, so its holder released nothing or leaked it"
    return DpcCulprit(mod, routine, at.cpu.index, "%s; %s." % (head, body), spinning, holders)
