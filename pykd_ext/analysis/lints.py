"""Lints: rule breaks a dump records even when nothing has deadlocked or crashed yet.  Each
finding names the module, the threads, the evidence read, a line saying why it is wrong and
where to read about it.

    r = run_lints(target)          # LintReport: r.findings [Finding], r.diagnostics
    wait_at_dispatch(target, threads, diags)      -> [Finding]
    unload_during_init(target, threads, diags)    -> [Finding]

wait-at-dispatch (seed 004).  KeWaitForSingleObject, KeWaitForMultipleObjects and
KeDelayExecutionThread record the IRQL they were called at in KTHREAD.WaitIrql before they
raise to SYNCH_LEVEL (ReactOS ntoskrnl/ke/wait.c: `Thread->WaitIrql =
KiAcquireDispatcherLock()`; WRK base/ntos/ke/wait.c: `Thread->WaitIrql =
KeRaiseIrqlToSynchLevel()`).  A caller at DISPATCH_LEVEL may only wait with a zero time-out,
which never leaves the thread Waiting (MS docs, KeWaitForSingleObject remarks); so a thread
that is Waiting with WaitIrql >= DISPATCH_LEVEL made a wait it must not make.  The field is
probed for (every shipped layout, 7 to 11, has it); a layout without it makes the lint say so.

unload-during-init (seed 002).  The I/O manager calls a driver's unload routine
(DRIVER_OBJECT.DriverUnload) once its entry point has returned, and only when no dispatch
routine can still be called; before Windows 8 load and unload were not serialised, so one
thread could run the unload while another still ran DriverEntry (OSR, "One Driver: Loading
and Unloading... At The Same Time").  A thread's frame is the unload routine when its
function starts at DriverUnload of the driver object, or it is the driver frame called by the
I/O manager's load/unload worker (IopUnloadDriver queues the unload to it: ReactOS
ntoskrnl/io/iomgr/driver.c IopLoadUnloadDriverWorker calls `DriverObject->DriverUnload`; Windows
7's nt!IopLoadUnloadDriver) or a minifilter's unload callback called by
fltmgr!FltpDoUnloadFilter.  A frame is the driver's initialisation or dispatch code when its
function starts at DriverInit, DriverExtension->AddDevice or a MajorFunction[] entry in the
driver's image, or it is the driver frame called by nt!IopLoadDriver (and the routines that
call DriverInit / AddDevice for it).  The driver objects are found on the stacks of the threads
in those kernel routines (which keep the object they work on in their locals): a word that
points at a DRIVER_OBJECT (Type IO_TYPE_DRIVER, Size, DriverStart the base of a loaded image).
"""
import struct

from ..errors import FieldNotFound, MemoryFault, TypeNotFound
from ..kernel.diag import Diagnostics
from ..kernel.devices import IO_TYPE_DRIVER, read_unicode_string
from ..kernel.processes import all_threads
from ..kernel.spinlocks import DISPATCH_LEVEL, kernel_pointer
from ..kernel.stacks import first_driver_frame, frames as stack_frames
from ..kernel.views import Struct

WAIT_READ = ("MS docs: KeWaitForSingleObject, Remarks (callers at DISPATCH_LEVEL must give a zero Timeout); "
             "https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-kewaitforsingleobject")
UNLOAD_READ = ("OSR, One Driver: Loading and Unloading... At The Same Time, "
               "https://www.osr.com/nt-insider/2014-issue2/load-unload/; MS docs: Writing an Unload Routine, "
               "https://learn.microsoft.com/windows-hardware/drivers/kernel/writing-an-unload-routine")

#: kernel routines whose callee in a driver is its unload routine: the I/O manager's load/unload
#: worker, to which IopUnloadDriver hands the unload (ReactOS io/iomgr/driver.c
#: IopLoadUnloadDriverWorker calls `LoadParams->DriverObject->DriverUnload(...)`; on Windows 7
#: nt!IopLoadUnloadDriver, as seed 002's load thread shows, calls IopLoadDriver for a load and
#: the unload routine for an unload); a minifilter's FilterUnloadCallback, which the Filter
#: Manager calls (MS docs PFLT_FILTER_UNLOAD_CALLBACK; seed 002's fltmgr!FltpDoUnloadFilter)
UNLOAD_CALLERS = frozenset(["nt!ioploadunloaddriver", "nt!ioploadunloaddriverworker", "fltmgr!fltpdounloadfilter"])
#: kernel routines whose callee in a driver is its entry point or AddDevice (WRK io/iomgr
#: IopLoadDriver; ReactOS IopInitializeDriverModule; Windows 10 PnpCallDriverEntry between
#: IopLoadDriver and the driver; PnP's AddDevice callers)
INIT_CALLERS = frozenset(["nt!ioploaddriver", "nt!pnpcalldriverentry", "nt!iopinitializebuiltindriver",
                          "nt!iopinitializedrivermodule", "nt!pnpcalladddevice", "nt!ppvutilcalladddevice",
                          "nt!iopinitializedevice"])
MAX_STACK_SCAN = 0x8000          # bytes of a loader/unloader thread's stack searched for its driver object
IRQL_NAMES = {0: "PASSIVE_LEVEL", 1: "APC_LEVEL", 2: "DISPATCH_LEVEL", 12: "SYNCH_LEVEL", 13: "CLOCK_LEVEL",
              14: "IPI_LEVEL", 15: "HIGH_LEVEL"}
# x64 wdm.h (SYNCH_LEVEL = IPI_LEVEL - 2; MS docs !irql: "12 (SYNCH_LEVEL)" on x64); 3..11 are device IRQLs


def irql_name(irql):
    return IRQL_NAMES.get(irql, "device IRQL %d" % irql if irql is not None else "unknown")


class Finding(object):
    """lint: "unload-during-init" | "wait-at-dispatch"; threads: [dict] with the thread's
    vocabulary keys and its "role"; evidence: [str]; why: one line; read: where to read."""
    __slots__ = ("lint", "module", "threads", "evidence", "why", "read")

    def __init__(self, lint, module, threads, evidence, why, read):
        self.lint, self.module, self.threads = lint, module, threads
        self.evidence, self.why, self.read = evidence, why, read

    def as_dict(self):
        return {"lint": self.lint, "module": self.module, "threads": self.threads, "evidence": self.evidence,
                "why": self.why, "read": self.read}

    def summary(self):
        if self.lint == "wait-at-dispatch":
            t = self.threads[0]
            return "thread %s (%s) of %s waits at %s" % (t["thread"], t["cid"], self.module or "an unknown module",
                                                        t["wait_irql_name"])
        roles = ", ".join("%s on %s" % (t["role"], t["thread"]) for t in self.threads)
        return "%s: its unload routine runs while its initialisation still does (%s)" % (self.module, roles)


class LintReport(object):
    def __init__(self):
        self.findings = []
        self.diagnostics = Diagnostics()
        self.interrupted = None


def run_lints(target):
    r = LintReport()
    try:
        _, threads, d = all_threads(target)
        r.diagnostics.extend(d)
        r.findings.extend(wait_at_dispatch(target, threads, r.diagnostics))
        r.findings.extend(unload_during_init(target, threads, r.diagnostics))
    except (KeyboardInterrupt, SystemExit) as e:
        r.interrupted = str(e) or type(e).__name__
        r.diagnostics.add("interrupted", "interrupted (%s): the lints cover what was read before" % r.interrupted)
    return r


def _thread_dict(target, t, state_names, reason_names, role, frame=None):
    proc = t.process.name if t.process is not None else None
    d = {"thread": "0x%x" % t.address, "cid": t.cid, "process": proc,
         "state": state_names.get(t.state, "State%s" % t.state),
         "wait_reason": reason_names.get(t.wait_reason) if state_names.get(t.state) == "Waiting" else None,
         "role": role}
    if frame is not None:
        d["frame"] = frame.symbol
    return d


def _names(target):
    lays = target.layouts()
    return lays.enum_names("_KTHREAD_STATE"), lays.enum_names("_KWAIT_REASON")


# -- wait-at-dispatch --------------------------------------------------------------------------

def wait_at_dispatch(target, threads, diags):
    states, reasons = _names(target)
    waiting = next((v for v, n in states.items() if n == "Waiting"), None)
    out = []
    probed = False
    for t in threads:
        if t.state != waiting or t.view is None:
            continue
        if not t.view.has("WaitIrql"):
            if not probed:
                diags.add("missing-field", "KTHREAD has no WaitIrql in this layout: waits at DISPATCH_LEVEL "
                                           "are not looked for")
                probed = True
            return out
        try:
            irql = t.view["WaitIrql"]
        except MemoryFault as e:
            diags.add("unreadable", "thread 0x%x: WaitIrql unreadable" % t.address, e.address)
            continue
        if irql < DISPATCH_LEVEL:
            continue
        fr = stack_frames(target, t.address)
        drv = first_driver_frame(fr)
        td = _thread_dict(target, t, states, reasons, "waiter", drv)
        td["wait_irql"] = irql
        td["wait_irql_name"] = irql_name(irql)
        td["stack"] = [f.symbol for f in fr][:16]
        ev = ["thread 0x%x (%s) is Waiting (%s) with KTHREAD.WaitIrql %d (%s)"
              % (t.address, t.cid, td["wait_reason"], irql, irql_name(irql))]
        if drv is not None:
            ev.append("driver frame on its stack: %s" % drv.symbol)
        out.append(Finding("wait-at-dispatch", drv.module.image if drv is not None else None, [td], ev,
                           "a dispatcher wait at DISPATCH_LEVEL or above: only a zero time-out is allowed there, "
                           "and that never leaves the thread Waiting; the thread blocked with the processor raised",
                           WAIT_READ))
    return out


# -- unload-during-init --------------------------------------------------------------------------

def _start(frame):
    """The start of the function a frame is in (its ip less the symbol's displacement), or
    None when the frame has no function symbol."""
    s = frame.symbol or ""
    if "!" not in s:
        return None
    disp = s.split("+", 1)[1] if "+" in s else "0"
    try:
        return frame.ip - int(disp, 16)
    except ValueError:
        return None


def _fn(frame):
    return (frame.function or "").lower()


def _callee(frames, i):
    """The driver frame a kernel routine at index i called: the next inner frame when it is in
    a module that is not the kernel, or the one after a Driver Verifier thunk (nt!Vf*/Vi*, which
    Verifier puts between the I/O manager and a verified driver's routines).  Any other kernel
    frame between means the routine called into the kernel, not the driver (Windows 7's
    nt!IopLoadUnloadDriver -> nt!IopLoadDriver -> DriverInit is a load, not an unload)."""
    for j in range(i - 1, max(i - 3, -1), -1):
        f = frames[j]
        if f.module is not None and not f.is_kernel:
            return f
        fn = (f.function or "").lower()
        if not (fn.startswith("nt!vf") or fn.startswith("nt!vi")):
            return None
    return None


class DriverRoutines(object):
    __slots__ = ("address", "name", "module", "unload", "init")

    def __init__(self, address, name, module):
        self.address, self.name, self.module = address, name, module
        self.unload = None
        self.init = {}           # routine address -> "DriverInit" / "AddDevice" / "MajorFunction[n]"


def read_driver_routines(target, address):
    """The DriverRoutines of the DRIVER_OBJECT at `address`, or None when it does not read as
    one (Type IO_TYPE_DRIVER, Size sizeof(DRIVER_OBJECT), DriverStart the base of a module)."""
    d = Struct(target, "_DRIVER_OBJECT", address)
    try:
        if d["Type"] != IO_TYPE_DRIVER or d["Size"] != d.size:
            return None
        start = d["DriverStart"]
        mod = target.module_at(start) if start else None
        if mod is None or mod.base != start:
            return None
        r = DriverRoutines(address, read_unicode_string(target, d.address_of("DriverName")), mod)
        r.unload = d["DriverUnload"] or None
        init = d["DriverInit"]
        if init:
            r.init[init] = "DriverInit"
        ext = d["DriverExtension"]
        if ext:
            try:
                add = Struct(target, "_DRIVER_EXTENSION", ext)["AddDevice"]
                if add:
                    r.init.setdefault(add, "AddDevice")
            except MemoryFault:
                pass
        f = d.layout.field("MajorFunction")
        raw = target.read(address + f.offset, f.size)
        for n in range(f.size // 8):
            p = struct.unpack_from("<Q", raw, 8 * n)[0]
            if mod.base <= p < mod.end:      # the driver's own, not IopInvalidDeviceRequest
                r.init.setdefault(p, "MajorFunction[0x%x]" % n)
        return r
    except (MemoryFault, FieldNotFound, TypeNotFound):
        return None


def _driver_objects_on_stack(target, frames, stack_base, seen):
    """DRIVER_OBJECTs a stack's words point at, from its innermost frame up."""
    if not frames:
        return []
    lo = frames[0].sp & ~7
    hi = min(stack_base or lo + MAX_STACK_SCAN, lo + MAX_STACK_SCAN)
    out = []
    a = lo
    while a < hi:
        end = min((a | 0xfff) + 1, hi)
        try:
            raw = target.read(a, end - a)
        except MemoryFault:
            a = end
            continue
        for off in range(0, len(raw) - 7, 8):
            w = struct.unpack_from("<Q", raw, off)[0]
            if not kernel_pointer(w) or w in seen:
                continue
            seen[w] = read_driver_routines(target, w)
            if seen[w] is not None:
                out.append(seen[w])
        a = end
    return out


def unload_during_init(target, threads, diags):
    states, reasons = _names(target)
    stacks = {}
    for t in threads:
        try:
            stacks[t.address] = stack_frames(target, t.address)
        except MemoryFault as e:
            diags.add("unreadable", "thread 0x%x: stack unreadable" % t.address, e.address)
    tindex = {t.address: t for t in threads}
    # the driver objects the loading / unloading kernel routines work on
    seen, drivers = {}, {}
    for addr, fr in stacks.items():
        if any(_fn(f) in UNLOAD_CALLERS or _fn(f) in INIT_CALLERS for f in fr):
            for d in _driver_objects_on_stack(target, fr, tindex[addr].stack_base, seen):
                drivers[d.address] = d
    unload_at = {d.unload: d for d in drivers.values() if d.unload}
    init_at = {a: (d, what) for d in drivers.values() for a, what in d.init.items()}
    roles = {}                   # module image -> {"unload": [(thread, frame, how)], "init": [...]}
    for addr, fr in stacks.items():
        for i, f in enumerate(fr):
            s = _start(f)
            hit = None
            if s is not None and s in unload_at:
                d = unload_at[s]
                hit = ("unload", f, "its function starts at DriverUnload of driver object 0x%x (%s)"
                       % (d.address, d.name or d.module.image), d.module.image)
            elif s is not None and s in init_at:
                d, what = init_at[s]
                hit = ("init", f, "its function starts at %s of driver object 0x%x (%s)"
                       % (what, d.address, d.name or d.module.image), d.module.image)
            elif _fn(f) in UNLOAD_CALLERS or _fn(f) in INIT_CALLERS:
                c = _callee(fr, i)
                if c is not None:
                    role = "unload" if _fn(f) in UNLOAD_CALLERS else "init"
                    hit = (role, c, "called by %s" % f.function, c.module.image)
            if hit is None:
                continue
            role, frame, how, image = hit
            mine = roles.setdefault(image, {"unload": [], "init": []})[role]
            if not any(x[0] == addr for x in mine):
                mine.append((addr, frame, how))
    out = []
    for image in sorted(roles):
        r = roles[image]
        unloaders = {x[0] for x in r["unload"]}
        others = [x for x in r["init"] if x[0] not in unloaders]
        if not r["unload"] or not others:
            continue
        tds, ev = [], []
        for role, items in (("unload", r["unload"]), ("init", others)):
            for addr, frame, how in items:
                t = tindex[addr]
                tds.append(_thread_dict(target, t, states, reasons, role, frame))
                ev.append("thread 0x%x (%s, %s) is in %s: %s" % (
                    addr, t.cid, tds[-1]["state"], frame.symbol, how))
        out.append(Finding("unload-during-init", image, tds, ev,
                           "a driver's unload routine runs while its entry point, AddDevice or a dispatch routine "
                           "still runs on another thread: the unload tears down what that code is using",
                           UNLOAD_READ))
    return out
