"""triage: the first look -- read the bug check (or its absence), run what applies, and say
first what happened, the driver to blame, the evidence and how complete the reading was, with
a stable signature for grouping dumps (bug check, subcode, module!function, like a failure
bucket).

Routing (Microsoft's bug check reference pages name the parameters used):
  0x9F  DRIVER_POWER_STATE_FAILURE        powerirps (the stuck IRP and who holds it)
  0x133 DPC_WATCHDOG_VIOLATION            dpcs (the DPC/ISR that ran too long, spin locks),
  0x101 CLOCK_WATCHDOG_TIMEOUT            running, deadlock (spin-lock cycles)
  0x13C INVALID_IO_BOOST_STATE,           deadlock (lock analysis; 0x162's parameter 2 is the
  0x162 KERNEL_AUTO_BOOST_INVALID_...     lock released)
  0xA / 0xD1 IRQL_NOT_LESS_OR_EQUAL       running (IRQL, what faulted), deadlock (lock holders);
                                          parameter 4 is the faulting instruction
  0xC4 DRIVER_VERIFIER_DETECTED_VIOLATION deadlock (Verifier's deadlock database, 0x1001)
  no bug check, 0xE2 MANUALLY_INITIATED_CRASH, anything else: a hang --
                                          deadlock and powerirps (locks and stuck IRPs)
"""
from ..analysis.dpc import analyze_dpcs
from ..analysis.power import analyze_power
from ..analysis.waitgraph import analyze as analyze_waits

NAMES = {0x9F: "DRIVER_POWER_STATE_FAILURE", 0x133: "DPC_WATCHDOG_VIOLATION", 0x101: "CLOCK_WATCHDOG_TIMEOUT",
         0x13C: "INVALID_IO_BOOST_STATE", 0x162: "KERNEL_AUTO_BOOST_INVALID_LOCK_RELEASE",
         0xA: "IRQL_NOT_LESS_OR_EQUAL", 0xD1: "DRIVER_IRQL_NOT_LESS_OR_EQUAL",
         0xC4: "DRIVER_VERIFIER_DETECTED_VIOLATION", 0xE2: "MANUALLY_INITIATED_CRASH"}

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


def _deadlock_verdict(v, a):
    if a.cycles:
        c = a.cycles[0]
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
    elif code in (0x133, 0x101):
        r = t.results["dpcs"]
        c = r.culprit
        v.what = c.reason if c is not None else "bug check 0x%x: no processor's stack names what ran too long" % code
        v.driver = c.module if c is not None else None
        v.function = c.routine if c is not None else None
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
        v.function = target.describe(ip)
        v.what = "a %s of 0x%x at IRQL %d by %s" % ("write" if bc.args[2] & 1 else "read", bc.args[0], bc.args[1],
                                                    v.function)
        v.evidence = ["parameter 4: the faulting instruction"]
        a = t.results.get("deadlock")
        if a is not None and (a.cycles or a.chains):
            v.evidence.append("locks held at the time: see the deadlock section")
    elif code == 0x162:
        v.what = "an AutoBoost-tracked lock 0x%x released by a thread that does not own it (parameter 2)" % bc.args[1]
        run = t.results.get("running")
        here = next((x for x in (run.cpus if run else []) if x.bugchecked), None)
        if here is not None and here.segment is not None and here.segment.driver is not None:
            v.driver = here.segment.driver.module.image
            v.function = here.segment.driver.function
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
            v.what = "Driver Verifier recorded a lock-order inversion: %d participants" % len(a.verifier.participants)
            v.evidence.append("Verifier deadlock database")
            found = True
        if not found:
            v.what = ("no deadlock cycle, lock wait or stuck power IRP was found" if code in (None, 0xE2)
                      else "bug check 0x%x: no analysis here names a cause; the sections below show what was read"
                      % code)
    sub = ""
    if bc is not None and code in (0x9F, 0x133, 0xC4, 0x101):
        sub = "_%X" % bc.args[0]
    name = NAMES.get(code, "NONE" if code is None else "0x%X" % code)
    t.signature = "%s%s_%s%s" % ("0x%X" % code if code is not None else "NO_BUGCHECK", sub,
                                 v.driver or "UNKNOWN", ("!" + v.function.split("!", 1)[-1].split("+")[0])
                                 if v.function else "")
    t.name = name
