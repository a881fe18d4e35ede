"""triage: the first look -- read the bug check (or its absence), run what applies, and say
first what happened, the driver to blame, the evidence and how complete the reading was, with
a stable signature for grouping dumps (bug check, subcode, module!function, like a failure
bucket).

Routing (Microsoft's bug check reference pages name the parameters used):
  0x9F  DRIVER_POWER_STATE_FAILURE        powerirps (the stuck IRP and who holds it)
  0x133 DPC_WATCHDOG_VIOLATION            dpcs (the DPC/ISR that ran too long, spin locks),
  0x101 CLOCK_WATCHDOG_TIMEOUT            running, deadlock (spin locks): parameter 3 is the PRCB of
                                          the processor that took no clock interrupt (parameter 4 its
                                          index on current builds); what it runs, its IRQL, the spin
                                          lock it spins on and who holds it; its top driver frame
                                          is blamed
  0x13C INVALID_IO_BOOST_STATE            the thread of parameter 1 exited with the I/O boost state of
                                          parameter 2 (it must be 0): its stack's driver
  0x162 KERNEL_AUTO_BOOST_INVALID_...     the thread of parameter 1 released the AutoBoost-tracked lock
                                          of parameter 2 it does not own: its stack's driver, and who
                                          the lock analysis says holds the lock
  0xA / 0xD1 IRQL_NOT_LESS_OR_EQUAL       running (IRQL, what faulted), deadlock (lock holders):
                                          parameter 1 the address referenced, 2 the IRQL, 3 the
                                          access (0 read, 1 write, 2 or 8 execute), 4 the faulting
                                          instruction (its module and function are blamed); the
                                          spin locks the faulting processor holds that others spin on
  0xC4 DRIVER_VERIFIER_DETECTED_VIOLATION deadlock (Verifier's deadlock database, 0x1001)
  no bug check, 0xE2 MANUALLY_INITIATED_CRASH, anything else: a hang --
                                          deadlock and powerirps (locks and stuck IRPs)

Every route also runs the lints (analysis/lints.py: waits at DISPATCH_LEVEL, a driver unloaded
while it initialises), which become the verdict when nothing stronger is found, and reads the
timer resolution (kernel/timers.py explain), said when the clock is finer or coarser than every
live request (the verdict of a hang does not change for it).
"""
from ..analysis.dpc import analyze_dpcs
from ..analysis.lints import irql_name, run_lints
from ..analysis.power import analyze_power
from ..analysis.waitgraph import analyze as analyze_waits
from ..errors import MemoryFault
from ..kernel.diag import Diagnostics
from ..kernel.stacks import first_driver_frame, frames as stack_frames
from ..target.base import BUGCHECK_NAMES, LIVE_DUMPS
from ..kernel.timers import explain, increments, kernel_request, process_request_count, requests

NAMES = BUGCHECK_NAMES

ROUTES = {0x9F: ("powerirps",), 0x133: ("dpcs", "running", "deadlock"), 0x101: ("dpcs", "running", "deadlock"),
          0x13C: ("deadlock",), 0x162: ("deadlock", "running"), 0xA: ("running", "deadlock"),
          0xD1: ("running", "deadlock"), 0xC4: ("deadlock",)}
HANG = ("deadlock", "powerirps")


class Verdict(object):
    def __init__(self):
        self.what = ""
        self.driver = None
        self.function = None
        self.evidence = []
        self.complete = True
        self.why_partial = []


class Triage(object):
    def __init__(self):
        self.bugcheck = None
        self.route = ()
        self.results = {}        # section -> analysis result
        self.verdict = Verdict()
        self.signature = ""
        self.name = None
        self.lints = None        # LintReport (analysis/lints.py)
        self.timer = None        # TimerResolution
        self.hung = None         # HungProcessor, for 0x101
        self.fault = None        # Fault, for 0xA / 0xD1
        self.fault_frame = None  # the faulting instruction as a frame (module!function+0xoff)


class TimerResolution(object):
    """What timerres reads: requests, increments, the drivers' request, the process count,
    explain()'s verdict; `notable` when the clock is finer or coarser than every live request."""

    def __init__(self, target):
        self.diagnostics = Diagnostics()
        self.reqs, self.complete = requests(target, self.diagnostics)
        self.inc = increments(target, self.diagnostics)
        self.kernel = kernel_request(target, self.diagnostics)
        self.count = process_request_count(target, self.diagnostics)
        self.explain = explain(self.reqs, self.kernel, self.inc)

    @property
    def notable(self):
        return self.explain["kind"] in ("finer", "coarser")


class HungProcessor(object):
    """0x101: the processor parameter 3's PRCB names, what it runs (its CpuActivity), its IRQL
    (always None: it saved none), the spin lock it spins on (SpinLockReport) and the driver
    frame blamed."""
    __slots__ = ("prcb", "activity", "irql", "spin", "frame")

    def __init__(self, prcb):
        self.prcb = prcb
        self.activity = self.irql = self.spin = self.frame = None


class Fault(object):
    """0xA / 0xD1: the access (parameters 1-4), the processor and thread that faulted, and the
    locks it holds that others wait or spin on: [(lock address, kind, name, waiting CPUs or
    threads, evidence)]."""
    __slots__ = ("address", "irql", "access", "ip", "cpu", "thread", "holds")

    def __init__(self, args):
        self.address, self.irql, self.ip = args[0], args[1], args[3]
        self.access = access_name(args[2])
        self.cpu = self.thread = None
        self.holds = []


def access_name(value):
    """Parameter 3 of 0xA / 0xD1 (MS docs, bug checks 0xA and 0xD1): bit 0 write, 0x2 or bit 3
    execute, else read."""
    if value & 8 or value == 2:
        return "execute"
    return "write" if value & 1 else "read"


def triage(target):
    t = Triage()
    bc = target.bugcheck()
    t.bugcheck = bc
    code = bc.code if bc is not None else None
    t.route = ROUTES.get(code, HANG)
    for section in t.route:
        if section == "deadlock":
            t.results[section] = analyze_waits(target)
        elif section == "powerirps":
            t.results[section] = analyze_power(target)
        elif section in ("dpcs", "running"):
            t.results[section] = t.results.get("dpcs") or t.results.get("running") or analyze_dpcs(target)
    t.lints = run_lints(target)
    t.timer = TimerResolution(target)
    _verdict(t, target)
    return t


def _partial(v, name, result):
    interrupted = getattr(result, "interrupted", None)
    warnings = len(getattr(result, "diagnostics", ()) or ())
    if interrupted:
        v.complete = False
        v.why_partial.append("%s was interrupted (%s)" % (name, interrupted))
    elif warnings:
        v.complete = False
        v.why_partial.append("%s read with %d warning%s" % (name, warnings, "s" if warnings > 1 else ""))


def _deadlock_verdict(v, a, cycle=None):
    """The verdict of a deadlock analysis: `cycle` (default the first cycle), else the chain
    with the most waiters; False when there is neither."""
    if cycle is not None or a.cycles:
        c = cycle if cycle is not None else a.cycles[0]
        drivers = [a.threads[th].driver for th in c.threads if th in a.threads and a.threads[th].driver]
        kinds = sorted({a.locks[lk].kind for lk in c.locks})
        v.what = "%sdeadlock: %d thread%s, %d lock%s (%s)" % (
            "possible " if c.conditional else "", len(c.threads), "s" if len(c.threads) > 1 else "",
            len(c.locks), "s" if len(c.locks) > 1 else "", ", ".join(kinds))
        v.driver = drivers[0] if drivers else None
        f = a.threads.get(c.threads[0])
        v.evidence = sorted({e.evidence for e in c.edges}) + ["owner inferred: %s" % ev for _, _, ev in c.inferred]
        v.function = _blamed_function(f)
        return True
    if a.chains:
        ch = max(a.chains, key=lambda c: (len({p[0].thread for p in c.paths if p}), -c.root))
        n = len({p[0].thread for p in ch.paths if p})
        f = a.threads.get(ch.root)
        v.what = "%d thread%s wait%s behind one root blocker: %s" % (n, "s" if n > 1 else "", "" if n > 1 else "s",
                                                                     ch.reason)
        if f is None:
            # the root is a lock with no owner to name (a push lock without lock entries): its
            # waiters' driver is the one to look at
            waiters = [a.threads.get(p[0].thread) for p in ch.paths if p]
            drivers = [w.driver for w in waiters if w is not None and w.driver]
            f = next((w for w in waiters if w is not None and w.driver == max(set(drivers), key=drivers.count)),
                     None) if drivers else None
        v.driver = f.driver if f is not None else None
        v.function = _blamed_function(f)
        v.evidence = sorted({e.evidence for p in ch.paths for e in p})
        if ch.suspected:
            v.evidence.append("suspected cross-object deadlock")
        return True
    return False


def _blamed_function(f):
    if f is None or not f.frames or not f.driver:
        return None
    for fr in f.frames:
        if fr.module is not None and fr.module.image == f.driver:
            return fr.function or fr.symbol
    return None


def _verdict(t, target):
    v = t.verdict
    bc = t.bugcheck
    code = bc.code if bc is not None else None
    for name, result in t.results.items():
        _partial(v, name, result)
    _partial(v, "the lints", t.lints)
    if not t.timer.complete or t.timer.diagnostics:
        _partial(v, "timer resolution", t.timer)
    if code == 0x9F:
        r = t.results["powerirps"]
        c = r.culprit
        v.what = c.reason if c is not None else "bug check 0x9F, but no stuck power IRP could be named"
        v.driver = c.module if c is not None else None
        v.evidence = [x for x in (("IRP 0x%x" % c.irp) if c is not None and c.irp else None,
                                  ("thread 0x%x" % c.thread) if c is not None and c.thread else None) if x]
        if c is not None and c.waits_for is not None:
            v.evidence.append("the thread waits for IRP 0x%x, pending at %s" % (
                c.waits_for.irp.address, c.waits_for.module or "an unknown driver"))
            prev = c.waits_for
            for u, x in c.further:           # the chain followed further (analysis.power._follow)
                v.evidence.append("thread 0x%x, waiting inside %s (inferred to serve IRP 0x%x), waits for IRP 0x%x, "
                                  "pending at %s" % (u.address, prev.module or "an unknown driver", prev.irp.address,
                                                     x.irp.address, x.module or "an unknown driver"))
                prev = x
            if c.chain_note:
                v.evidence.append(c.chain_note)
    elif code == 0x101:
        _clock_watchdog(t, target)
    elif code == 0x133:
        r = t.results["dpcs"]
        c = r.culprit
        v.what = c.reason if c is not None else "bug check 0x%x: no processor's stack names what ran too long" % code
        v.driver = c.module if c is not None else None
        # the signature's function is the blamed module's own: a DPC routine of another module
        # (ndis's, calling its miniport) would pair one module with another's function
        v.function = c.routine if c is not None and c.routine and c.module and "!" in c.routine and \
            c.routine.split("!", 1)[0].lower() == c.module.rsplit(".", 1)[0].lower() else None
        if c is not None and c.spinning:
            v.evidence = ["spinning on a spin lock"] + (["CPUs that could hold it: %s" % ", ".join(map(str, c.holders))]
                                                        if c.holders else [])
        a = t.results.get("deadlock")
        if a is not None and a.cycles:              # spin-lock cycles are in the deadlock section
            v.evidence.append("a deadlock cycle (see the deadlock section)")
    elif code in (0xA, 0xD1):
        ip = bc.args[3]
        mod = target.module_at(ip)
        v.driver = mod.image if mod is not None else None
        # a function only where a module holds the instruction: a bare address is no stable bucket
        t.fault_frame = target.describe(ip) if mod is not None else None
        v.function = t.fault_frame.split("+", 1)[0] if t.fault_frame else None
        f = t.fault = _fault(t, target)
        v.what = "a%s %s of 0x%x at IRQL %d (%s) by %s%s" % (
            "n" if f.access == "execute" else "", f.access, bc.args[0], bc.args[1], irql_name(bc.args[1]),
            t.fault_frame or "0x%x" % ip, "" if mod is not None else " (in no loaded module)")
        v.evidence = ["parameter 4: the faulting instruction"]
        if f.cpu is not None:
            v.evidence.append("faulted on CPU %d%s" % (f.cpu, (", thread 0x%x" % f.thread) if f.thread else ""))
        for lock, kind, name, others, how in f.holds:
            v.evidence.append("it holds %s 0x%x%s: %s it (%s)" % (kind, lock, (" (%s)" % name) if name else "",
                                                                   others, how))
        if f.holds:
            v.what += "; the faulting code holds %s others wait for" % (
                "a lock" if len(f.holds) == 1 else "%d locks" % len(f.holds))
    elif code == 0x162:
        _auto_boost_release(v, bc, target, t.results.get("deadlock"))
    elif code == 0x13C:
        _io_boost_state(v, bc, target)
    else:
        a = t.results.get("deadlock")
        found = a is not None and _deadlock_verdict(v, a)
        r = t.results.get("powerirps")
        if r is not None and r.culprit is not None and (not found or code == 0x9F):
            v.what = r.culprit.reason
            v.driver = r.culprit.module
            v.evidence = ["stuck power/PnP IRP"]
            found = True
        if code == 0xC4 and a is not None and a.verifier is not None and a.verifier.participants:
            ps = a.verifier.participants
            v.what = "Driver Verifier recorded a lock-order inversion: %d participants" % len(ps)
            v.evidence.append("Verifier deadlock database")
            # the last participant is the acquisition that closed the cycle (the instigator's):
            # the driver at its recorded acquire site is the one to look at
            last = ps[-1]
            site = next((ip for ip in last.stack if ip and target.module_at(ip) is not None), None)
            if site is not None:
                v.driver = target.module_at(site).image
                frame = target.describe(site)
                v.function = frame.split("+", 1)[0] if "!" in frame else None
                v.evidence.append("thread 0x%x acquired 0x%x at %s, closing the cycle" % (last.thread, last.lock, frame))
            found = True
        if not found and t.lints.findings:
            lint = next((x for x in t.lints.findings if x.module), t.lints.findings[0])
            v.what = "no deadlock cycle or stuck IRP, but a rule is broken: %s" % lint.summary()
            v.driver = lint.module
            v.function = next((x.get("frame") for x in lint.threads if x.get("frame") and "!" in x["frame"]), None)
            v.evidence = ["lint %s: %s" % (lint.lint, e) for e in lint.evidence]
            found = True
        if code in (0x7E, 0x1000007E):
            found = _system_thread_exception(v, bc, target, t.lints) or found
        elif code == 0x1CC and a is not None:
            found = _resource_timeout(v, a, bc) or found
        elif code == 0x1A3 and a is not None:
            found = _call_not_returned(v, a, bc, target) or found
        elif code == 0x1D4:
            v.evidence.append("UcmUcsiCx.sys (the USB Type-C UCSI class extension): a UCSI command 0x%x %s; "
                              "dt UcmUcsiCx!UCMUCSICX_TRIAGE 0x%x" % (
                                  bc.args[1], "timed out: the firmware did not answer" if bc.args[0] == 0 else
                                  "failed: the client driver or the firmware returned an error", bc.args[2]))
        if not found:
            v.what = ("no deadlock cycle, lock wait or stuck power IRP was found" if code in (None, 0xE2)
                      else "bug check 0x%x: no analysis here names a cause; the sections below show what was read"
                      % code)
    if code in LIVE_DUMPS:
        v.evidence.append("a live dump (0x%X %s): the system kept running while it was captured, so a list "
                          "or a wait may have changed under the reading" % (code, NAMES[code]))
    if t.timer is not None and t.timer.notable:
        cur = t.timer.inc.get("current")
        v.evidence.append("timer resolution: the clock (%s) is %s than every live request (see the timer "
                          "resolution section)" % ("%.4f ms" % (cur / 1e4) if cur else "?",
                                                    "finer" if t.timer.explain["kind"] == "finer" else "coarser"))
    sub = ""
    if bc is not None and code in (0x9F, 0x133, 0xC4):
        sub = "_%X" % bc.args[0]
    elif bc is not None and code in (0x7E, 0x1000007E):
        sub = "_%X" % bc.args[0]                # the exception code: an access violation, a breakpoint...
    name = NAMES.get(code, "NONE" if code is None else "0x%X" % code)
    t.signature = "%s%s_%s%s" % ("0x%X" % code if code is not None else "NO_BUGCHECK", sub,
                                 v.driver or "UNKNOWN", ("!" + v.function.split("!", 1)[-1].split("+")[0])
                                 if v.function else "")
    t.name = name


def _thread_driver(v, target, thread, what):
    """The verdict's driver and function from `thread`'s stack (its first driver frame past
    the kernel and frameworks); the evidence says where they come from."""
    try:
        fr = stack_frames(target, thread)
    except MemoryFault as e:
        v.evidence.append("%s: its stack is unreadable (0x%x)" % (what, e.address))
        return None
    drv = first_driver_frame(fr)
    if drv is None:
        v.evidence.append("%s: no driver frame on its stack" % what if fr else "%s: no stack" % what)
        return None
    v.driver, v.function = drv.module.image, drv.function
    v.evidence.append("%s: its stack's driver frame %s" % (what, drv.symbol))
    return drv


def _auto_boost_release(v, bc, target, a):
    """0x162 KERNEL_AUTO_BOOST_INVALID_LOCK_RELEASE (MS docs: parameter 1 the thread, 2 the lock,
    3 the thread's session id): a thread released an AutoBoost-tracked lock it does not own --
    on behalf of another thread, or one it no longer owns.  The releasing thread's driver is the
    one to look at; the lock analysis says who holds the lock, where it can."""
    thread, lock, session = bc.args[0], bc.args[1], bc.args[2]
    lk = a.locks.get(lock) if a is not None else None
    name = lk.name if lk is not None and lk.name else None
    if name is None and target.module_at(lock) is not None:      # a driver's global lock: its symbol
        name = target.describe(lock)
    v.what = "thread 0x%x (parameter 1, session %d) released the AutoBoost-tracked lock 0x%x%s (parameter 2), " \
             "which it does not own" % (thread, session, lock, (" (%s)" % name) if name else "")
    v.evidence = []
    _thread_driver(v, target, thread, "parameter 1")
    if lk is not None and lk.owners:
        v.evidence.append("the lock analysis has it held by %s" % ", ".join(
            "thread 0x%x (%s, %s)" % (o, m, lk.owner_evidence.get(o, "recorded")) for o, m in lk.owners))


def _io_boost_state(v, bc, target):
    """0x13C INVALID_IO_BOOST_STATE (MS docs: parameter 1 the thread, 2 its boost state or
    throttle count, which must be 0 when a thread exits)."""
    thread, state = bc.args[0], bc.args[1]
    v.what = "thread 0x%x (parameter 1) exited with I/O boost state or throttle count 0x%x (parameter 2); it " \
             "must be 0 when a thread exits" % (thread, state)
    v.evidence = []
    _thread_driver(v, target, thread, "parameter 1")


def _system_thread_exception(v, bc, target, lints):
    """0x7E SYSTEM_THREAD_EXCEPTION_NOT_HANDLED (MS docs: parameter 1 the exception code, 2 the
    address where it happened, 3 the exception record, 4 the context record): the module and
    function at parameter 2; a lint about that module is the likely why (seed 002: the unload
    touched what DriverEntry had not made yet)."""
    ip = bc.args[1]
    mod = target.module_at(ip)
    v.driver = mod.image if mod is not None else None
    frame = target.describe(ip) if mod is not None else None
    v.function = frame.split("+", 1)[0] if frame else None
    v.what = "exception 0x%x at %s was not handled in a system thread" % (
        bc.args[0], target.describe(ip) if mod is not None else "0x%x (in no loaded module)" % ip)
    v.evidence = ["parameter 2: where the exception happened"]
    for lint in (lints.findings if lints is not None else []):
        if v.driver and lint.module == v.driver:
            v.what += "; at the same time %s" % lint.summary()
            v.evidence += ["lint %s: %s" % (lint.lint, e) for e in lint.evidence]
    return mod is not None


def _resource_timeout(v, a, bc):
    """0x1CC EXRESOURCE_TIMEOUT_LIVEDUMP (Microsoft: parameter 1 the ERESOURCE that timed out, 2 the
    thread that detected it, 3 the contention count, 4 the time-out in seconds): the cycle or the
    chain that lock is part of is the verdict, said as this lock's time-out."""
    lock, detector, contention, timeout = bc.args
    lk = a.locks.get(lock)
    said = "ERESOURCE 0x%x%s timed out after %d s (parameter 1; detected by thread 0x%x, contention count %d)" % (
        lock, (" (%s)" % lk.name) if lk is not None and lk.name else "", timeout, detector, contention)
    v.evidence = [e for e in v.evidence]
    cycle = next((c for c in a.cycles if lock in c.locks), None)
    chain = next((ch for ch in a.chains if ch.root == lock or any(e.lock == lock for p in ch.paths for e in p)), None)
    if cycle is not None:
        _deadlock_verdict(v, a, cycle)
        v.what = "%s: it is in a %s" % (said, v.what)
    elif chain is not None:
        f = a.threads.get(chain.root)
        v.what = "%s: %s" % (said, ("the root blocker, thread 0x%x, is %s" % (chain.root, chain.reason))
                             if chain.root_kind == "thread" else chain.reason)
        v.driver = f.driver if f is not None else None
        v.function = _blamed_function(f)
        v.evidence = sorted({e.evidence for p in chain.paths for e in p})
    else:
        # what else the hang reading found stands; the resource itself is said first
        if v.what:
            v.evidence.insert(0, "%s; no thread holds or waits for it now (it may have been released after "
                                 "the time-out, while the system ran)" % said)
            return False
        v.what = "%s; no thread holds or waits for it in this dump (it may have been released after the " \
                 "time-out, while the system ran)" % said
        v.driver = v.function = None
        v.evidence = ["parameter 1: the ERESOURCE"]
        return False
    v.evidence.insert(0, "parameter 1: ERESOURCE 0x%x" % lock)
    return True


def _call_not_returned(v, a, bc, target):
    """0x1A3 CALL_HAS_NOT_RETURNED_WATCHDOG_TIMEOUT_LIVEDUMP (Microsoft: parameter 1 the process,
    2 the thread whose call has not returned, 3 the time-out in ms): the chain that thread waits
    in, else the driver on its stack."""
    thread, timeout_ms = bc.args[1], bc.args[2]
    said = "thread 0x%x's call has not returned in %d ms (parameter 2)" % (thread, timeout_ms)
    cycle = next((c for c in a.cycles if thread in c.threads), None)
    chain = next((ch for ch in a.chains if any(p and p[0].thread == thread for p in ch.paths)), None)
    if cycle is not None:
        _deadlock_verdict(v, a, cycle)
        v.what = "%s: it is in a %s" % (said, v.what)
        return True
    if chain is not None:
        f = a.threads.get(chain.root)
        v.what = "%s: it waits behind %s" % (said, ("thread 0x%x, which is %s" % (chain.root, chain.reason))
                                                if chain.root_kind == "thread" else chain.reason)
        v.evidence = sorted({e.evidence for p in chain.paths for e in p})
    else:
        f = a.threads.get(thread)
        try:
            fr = f.frames if f is not None and f.frames else stack_frames(target, thread)
        except MemoryFault as e:
            v.what = "%s; its stack is unreadable (0x%x)" % (said, e.address)
            v.driver = v.function = None
            return False
        if not fr:
            # no frames: a thread on no process list, or an unwind that failed -- not "the kernel"
            v.what = "%s; its stack could not be unwound (no thread at that address, or no frames)" % said
            v.driver = v.function = None
            v.evidence = ["parameter 2: no stack"]
            return False
        drv = first_driver_frame(fr)
        v.what = "%s: it is in %s" % (said, drv.symbol if drv is not None else "the kernel only")
        v.driver = drv.module.image if drv is not None else None
        v.function = drv.function if drv is not None else None
        v.evidence = ["parameter 2: the thread's stack"]
        return drv is not None
    v.driver = f.driver if f is not None else None
    v.function = _blamed_function(f)
    return True


def _spin_report(a, cpu):
    """The SpinLockReport (deadlock analysis) processor `cpu` spins on, or None."""
    if a is None:
        return None
    return next((r for r in a.spin_locks if any(s.cpu.index == cpu for s in r.spinners)), None)


def _holder_text(r):
    if r.holder is not None:
        cpu, th, ev = r.holder
        return "held by CPU %s%s (recorded: %s)" % (cpu, (" thread 0x%x" % th) if th else "", ev)
    if r.candidates:
        return "held, by inference, by %s (%s; the lock word records no owner)" % (
            ", ".join("CPU %d thread 0x%x" % (c, th) for c, th, _ in r.candidates),
            ", ".join(sorted({ev for _, _, ev in r.candidates})))
    return "its holder is not recorded and no processor could be named"


def _lock_name(a, lock):
    lk = a.locks.get(lock) if a is not None and lock is not None else None
    return lk.name if lk is not None and lk.name else None


def _clock_watchdog(t, target):
    """0x101 CLOCK_WATCHDOG_TIMEOUT (MS docs, bug check 0x101: parameter 1 the clock interrupt
    time-out in nominal clock ticks, 3 the PRCB of the processor that did not respond, 4 its
    index): name that processor, what it runs, what its stack says of its IRQL (it saved none),
    whether it spins and who holds the lock, and blame its top driver frame."""
    v, bc = t.verdict, t.bugcheck
    run = t.results.get("running") or t.results.get("dpcs")
    a = t.results.get("deadlock")
    prcb = bc.args[2]
    h = t.hung = HungProcessor(prcb)
    h.activity = next((x for x in (run.cpus if run else []) if x.cpu.prcb == prcb), None)
    if h.activity is None:
        v.what = ("bug check 0x101: parameter 3 (0x%x) is the PRCB of no processor in KiProcessorBlock; the "
                  "processor that took no clock interrupt cannot be named" % prcb)
        return
    act = h.activity
    cpu = act.cpu.index
    # the hung processor took no clock interrupt, so it bug checked nothing and saved no IRQL
    # (KPRCB.DebuggerSavedIRQL is written by the processor that bug checks or breaks in: analysis/
    # dpc.py recorded_irql); what its stack shows is all there is
    h.irql = None
    s = act.segment
    running = s.frames if s is not None and s.frames else act.frames
    h.frame = first_driver_frame(running) or first_driver_frame(act.frames)
    if s is not None and s.spin is not None:
        h.spin = _spin_report(a, cpu)
    what = ("the %s %s" % (s.kind, s.routine.function or s.routine.symbol) if s is not None and s.kind and s.routine
            else "its idle loop" if act.cpu.idle and not running else
            "thread %s%s" % (act.thread_cid or "0x%x" % act.cpu.current_thread,
                             (" (%s)" % act.thread_process) if act.thread_process else ""))
    v.what = "CPU %d took no clock interrupt for 0x%x ticks: it runs %s" % (cpu, bc.args[0], what)
    if h.frame is not None:
        v.what += " in %s (%s)" % (h.frame.module.image, h.frame.symbol)
        v.driver = h.frame.module.image
        v.function = h.frame.function or h.frame.symbol
    if s is not None and s.kind:
        v.what += " at DISPATCH_LEVEL or above (as every %s)" % s.kind
    else:
        v.what += ", its IRQL not recorded (only the bug-checking processor saves one)"
    v.evidence = ["parameter 3: PRCB 0x%x is CPU %d's" % (prcb, cpu)]
    if bc.args[3] not in (0, cpu):
        v.evidence.append("parameter 4 (0x%x) names another processor index" % bc.args[3])
    if s is not None and s.spin is not None:
        v.what += ", spinning on a spin lock in %s" % s.spin.function
        r = h.spin
        if r is not None and r.address is not None:
            name = _lock_name(a, r.address)
            v.what += " (0x%x%s)" % (r.address, (" " + name) if name else "")
            v.evidence.append("spin lock 0x%x%s: %s" % (r.address, (" (%s)" % name) if name else "",
                                                         _holder_text(r)))
        else:
            v.evidence.append("spinning in %s; the lock was not found in its frames" % s.spin.function)
    if h.frame is None:
        v.evidence.append("no driver frame on CPU %d's stack" % cpu)


def _fault(t, target):
    """0xA / 0xD1: the processor that bug checked, its thread, and the locks that thread holds
    that others spin or wait on (the deadlock analysis's spin-lock reports and lock graph)."""
    bc = t.bugcheck
    f = Fault(bc.args)
    run = t.results.get("running")
    a = t.results.get("deadlock")
    here = next((x for x in (run.cpus if run else []) if x.bugchecked), None)
    if here is None:
        return f
    f.cpu = here.cpu.index
    f.thread = here.cpu.current_thread or None
    if a is None:
        return f
    for r in a.spin_locks:
        if r.address is None:
            continue
        spinners = [s.cpu.index for s in r.spinners if s.cpu.index != f.cpu]
        if not spinners:
            continue
        others = "CPU%s %s spin%s on" % ("s" if len(spinners) > 1 else "", ", ".join(map(str, spinners)),
                                         "" if len(spinners) > 1 else "s")
        if r.holder is not None and r.holder[0] == f.cpu:
            f.holds.append((r.address, r.kind, _lock_name(a, r.address), others, "recorded: %s" % r.holder[2]))
        elif any(c == f.cpu for c, _, _ in r.candidates):
            ev = next(e for c, _, e in r.candidates if c == f.cpu)
            f.holds.append((r.address, r.kind, _lock_name(a, r.address), others, "inferred: %s" % ev))
    facts = a.threads.get(f.thread) if f.thread else None
    for lock, mode in (facts.holds if facts is not None else []):
        lk = a.locks.get(lock)
        if lk is None or not lk.waiters or any(h[0] == lock for h in f.holds):
            continue
        waiters = sorted(set(lk.waiters))
        f.holds.append((lock, lk.kind, lk.name, "thread%s %s wait%s for" % (
            "s" if len(waiters) > 1 else "", ", ".join("0x%x" % w for w in waiters), "" if len(waiters) > 1 else "s"),
            "held %s" % mode))
    return f
