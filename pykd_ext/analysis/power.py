"""Pending power and PnP IRPs, the threads working on them, and who to blame for 0x9F.

    r = analyze_power(target)
    r.pending     [PendingIrp]: where each IRP is pending, its device stack and node, its age,
                  the threads involved and where their waits lead
    r.culprit     Culprit or None: the module to blame, the IRP, the thread, one sentence why

Blame follows the evidence, never the order a device stack is printed in: the driver at the
IRP's current stack location holds it; when a thread is blocked on its behalf (the PnP-lock
holder of subcode 4, the power worker running in that driver for subcode 3) the first
non-kernel module on that thread's stack is where it is stuck; when that thread waits on
a lock whose wait chain ends at a thread sleeping or waiting in another driver, that driver
is the one to look at; and when it waits for an IRP it issued itself (of any major function:
an IOCTL, a read) that is pending at another driver, the driver holding that IRP is
(ThreadRole.depends_on: the chain P <- thread <- Q @ B).

How a thread's waited-for IRP is recognised (WaitedIrp.evidence says which held):
- a synchronous request is queued on the IrpList of the thread that built it, through
  IRP.ThreadListEntry, with Tail.Overlay.Thread = that thread (ReactOS irp.c
  IoBuildDeviceIoControlRequest / IoBuildSynchronousFsdRequest -> IoQueueThreadIrp), and its
  UserEvent is the caller's event, which IopCompleteRequest signals: an IRP on the thread's
  list whose UserEvent is the very object the thread waits on is the one it waits for;
- short of that, when the thread waits on an object that is no lock, an IRP on its list
  issued from kernel mode (RequestorMode 0: IoAllocateIrp zeroes it and the IoBuild routines
  leave it so) pending at a driver the thread is not running in (no frame of it on the
  thread's stack) -- a thread waiting on a lock keeps its wait chain; a user thread's overlapped I/O is
  RequestorMode UserMode and is not taken; an IRP pending at a driver the thread runs in is
  the one it is working on, not one it waits for;
- only an IRP at a driver's stack location counts: a completed IRP (CurrentLocation =
  StackCount + 2, still listed until the IopCompleteRequest APC runs) or one not yet sent
  is held by no driver and blames none.
"""
from ..kernel.diag import Diagnostics
from ..kernel.io import (COMPLETED, IRP_MJ_PNP, IRP_MJ_POWER, NOT_SENT, PENDING, decode_device, decode_irp,
                         device_stack)
from ..kernel.power import device_tree, interrupt_time, pop_irp_list, thread_irps, watchdog_age
from ..progress import stopped
from .waitgraph import analyze, format_duration, is_sleeping, path_of, wait_summary

BUGCHECK_9F = 0x9F
IRP_MN_WAIT_WAKE = 0x00
STUCK_SECONDS = 60.0          # no bug check: a power IRP pending this long is called stuck
WORKER_STARTS = ("nt!popirpworker", "nt!popirpworkercontrol")

#: Microsoft's bug check 0x9F page: parameter 1 -> what happened, and what args 2-4 are
SUBCODES = {
    0x1: ("a device object is being freed while it still has an outstanding power request",
          ("device object", None, None)),
    0x2: ("a device object completed the IRP of a system power request without calling "
          "PoStartNextPowerIrp", ("target device object", "device object", "driver object")),
    0x3: ("a device object has blocked an IRP for too long",
          ("physical device object of the stack", "nt!TRIAGE_9F_POWER", "the blocked IRP")),
    0x4: ("the power transition timed out waiting to synchronise with the PnP subsystem",
          ("timeout in seconds", "the thread holding the PnP lock", "nt!TRIAGE_9F_PNP")),
    0x5: ("a device failed to complete a directed power transition in the required time",
          ("physical device object of the stack", "POP_FX_DEVICE", None)),
    0x6: ("a device did not complete its directed power transition callback successfully",
          ("POP_FX_DEVICE", "1: directed power down, 0: power up", None)),
    0x500: ("a device object completed the IRP of a system power request without calling "
            "PoStartNextPowerIrp", (None, "target device object", "device object")),
}


class ThreadRole(object):
    """A thread involved with an IRP: role says how (the IRP's own thread, the PnP-lock
    holder, a power worker running in the driver); facts are the wait-for analysis's
    ThreadFacts (None when the thread is in no thread list); path is where its waits lead."""
    __slots__ = ("address", "role", "facts", "path", "depends_on")

    def __init__(self, address, role, facts, path):
        self.address, self.role, self.facts, self.path = address, role, facts, path
        self.depends_on = []     # [WaitedIrp]: IRPs it issued and waits for, pending at a driver


class PendingIrp(object):
    __slots__ = ("irp", "sources", "pop", "stack", "device", "age", "threads", "more_threads", "normal")

    def __init__(self, irp):
        self.irp = irp
        self.sources = []
        self.pop = None          # the power manager's record (PopIrp) when there is one
        self.stack = None        # DeviceStack of the device it is pending at
        self.device = None       # that Device
        self.age = None          # seconds since the power watchdog was armed, when known
        self.threads = []        # [ThreadRole]
        self.more_threads = 0    # further wait-graph threads inside the holding driver, not listed
        self.normal = None       # why this pending IRP is expected (wait-wake), or None

    @property
    def location(self):
        return self.irp.current_loc

    @property
    def driver(self):
        return self.device.driver if self.device is not None else None

    @property
    def module(self):
        d = self.driver
        return d.image if d is not None and d.image else None

    @property
    def request(self):
        loc = self.location
        if loc is None:
            return "?"
        text = "%s / %s" % (loc.major_name, loc.minor_name)
        if loc.power:
            text += " %s" % loc.power[1]
        return text

    @property
    def waited(self):
        """The longest known time this IRP has been held: its watchdog age, or the wait of a
        thread blocked on its behalf."""
        if self.age is not None:
            return self.age
        times = [r.facts.seconds for r in self.threads if r.facts is not None and r.facts.seconds is not None]
        return max(times) if times else None


class WaitedIrp(PendingIrp):
    """An IRP a thread issued and waits for, pending at a driver's stack location: evidence
    [str] says how it is known to be the one waited for; strong when its UserEvent is the
    object the thread waits on."""
    __slots__ = ("evidence", "strong")

    def __init__(self, irp):
        PendingIrp.__init__(self, irp)
        self.evidence = []
        self.strong = False

    @property
    def request(self):
        loc = self.location
        if loc is None:
            return "?"
        if loc.ioctl is not None:
            return "%s, IOCTL 0x%x" % (loc.major_name, loc.ioctl)
        if loc.major in (IRP_MJ_POWER, IRP_MJ_PNP):
            return PendingIrp.request.fget(self)
        return loc.major_name


class Culprit(object):
    __slots__ = ("module", "irp", "thread", "reason", "pending", "blocked", "root", "waits_for", "further",
                 "chain_note")

    def __init__(self, module, irp, thread, reason, pending=None, blocked=None, root=None, waits_for=None):
        self.module, self.irp, self.thread, self.reason = module, irp, thread, reason
        self.pending = pending   # PendingIrp the blame is about
        self.blocked = blocked   # ThreadRole blocked on its behalf
        self.root = root         # root blocker thread address at the end of its wait chain
        self.waits_for = waits_for   # WaitedIrp the blocked thread waits for, when it is blamed
        self.further = []        # [(ThreadRole, WaitedIrp)]: the chain beyond waits_for (see _follow)
        self.chain_note = None   # why the chain ends where it does, when not at a driver alone


class BugCheckInfo(object):
    __slots__ = ("code", "args", "subcode", "meaning", "arg_names")

    def __init__(self, code, args):
        self.code, self.args = code, tuple(args)
        self.subcode = self.args[0] if code == BUGCHECK_9F and self.args else None
        meaning, names = SUBCODES.get(self.subcode, (None, (None, None, None)))
        self.meaning = meaning
        self.arg_names = names


class PowerReport(object):
    def __init__(self):
        self.bugcheck = None     # BugCheckInfo
        self.pending = []
        self.not_sent = 0        # power IRPs allocated, not yet sent (CurrentLocation = StackCount + 1)
        self.completed = 0       # power IRPs completed, not yet freed (CurrentLocation = StackCount + 2)
        self.culprit = None
        self.holder = None       # ThreadRole: subcode 4's PnP-lock holder
        self.sources = {}        # source -> what it gave, in words
        self.waits = None        # the wait-for Analysis
        self.diagnostics = Diagnostics()
        self.interrupted = None
        self.irp_lists = {}      # thread -> [IRP address] on its IrpList
        self._io = None          # (target, decoded IRPs, device stacks) of _collect, for _follow


def analyze_power(target):
    r = PowerReport()
    try:
        _collect(target, r)
    except (KeyboardInterrupt, SystemExit) as e:
        r.interrupted = stopped(target, e)
        r.diagnostics.add("interrupted", "interrupted (%s): the results below cover what was read before"
                          % r.interrupted)
    try:
        r.culprit = _blame(target, r)
    except (KeyboardInterrupt, SystemExit) as e:
        r.interrupted = r.interrupted or stopped(target, e)
    if r.culprit is not None and r.interrupted:
        r.culprit.reason = "From what was read before the interruption: " + r.culprit.reason
    return r


def _collect(target, r):
    diags = r.diagnostics
    bc = target.bugcheck()
    if bc is not None:
        r.bugcheck = BugCheckInfo(bc.code, bc.args)
    a = r.waits = analyze(target)
    diags.extend(d for d in a.diagnostics if d not in diags)
    if a.interrupted:
        raise KeyboardInterrupt(a.interrupted)
    sub = r.bugcheck.subcode if r.bugcheck else None

    found = {}                   # IRP address -> [source]

    def note(irp, source):
        if irp:
            found.setdefault(irp, [])
            if source not in found[irp]:
                found[irp].append(source)

    if sub == 0x3:
        note(r.bugcheck.args[3], "bug check arg4")
    pops = pop_irp_list(target, diags)
    pop_by_irp = {}
    if pops is None:
        r.sources["PopIrpList"] = "not typed in this build's symbols: threads and devices searched"
    else:
        r.sources["PopIrpList"] = "%d power IRP%s" % (len(pops), "" if len(pops) == 1 else "s")
        for p in pops:
            pop_by_irp[p.irp] = p
            note(p.irp, "PopIrpList")
    holder = r.bugcheck.args[2] if sub == 0x4 else None
    n_thread_irps = 0
    by_thread = {}               # thread -> [IRP address] on its IrpList
    for t in sorted(a.thread_index):
        by_thread[t] = thread_irps(target, t, diags)
        for irp in by_thread[t]:
            n_thread_irps += 1
            note(irp, "IrpList of thread 0x%x" % t)
    if holder and holder not in a.thread_index:
        by_thread[holder] = thread_irps(target, holder, diags)
        for irp in by_thread[holder]:
            note(irp, "IrpList of thread 0x%x" % holder)
    r.irp_lists = by_thread
    r.sources["thread IRP lists"] = "%d IRP%s on %d threads" % (
        n_thread_irps, "" if n_thread_irps == 1 else "s", len(a.thread_index))
    stacks = {}
    nodes = device_tree(target, diags)
    for _, pdo in nodes:
        if not pdo or pdo in stacks:
            continue
        st = device_stack(target, pdo)
        diags.extend(d for d in st.diagnostics if d not in diags)
        for d in st.devices:
            stacks.setdefault(d.address, st)
            if d.current_irp:
                note(d.current_irp, "CurrentIrp of device 0x%x" % d.address)
    r.sources["device tree"] = "%d device node%s" % (len(nodes), "" if len(nodes) == 1 else "s")

    now = interrupt_time(target, diags) if pop_by_irp else None
    workers = None
    decoded = {}
    for address in sorted(found, key=lambda x: (0 if "bug check arg4" in found[x] else 1, x)):
        irp = decoded[address] = decode_irp(target, address)
        diags.extend(d for d in irp.diagnostics if d not in diags)
        asked = "bug check arg4" in found[address]
        loc = irp.current_loc
        if not asked:
            if not irp.readable:
                continue
            if loc is None:
                if address in pop_by_irp and irp.state == NOT_SENT:
                    r.not_sent += 1
                elif address in pop_by_irp and irp.state == COMPLETED:
                    r.completed += 1
                continue
            if loc.major not in (IRP_MJ_POWER, IRP_MJ_PNP):
                continue
        p = PendingIrp(irp)
        p.sources = found[address]
        p.pop = pop_by_irp.get(address)
        if p.pop is not None:
            p.age = watchdog_age(now, p.pop.watchdog_start)
        if loc is not None and loc.device:
            p.stack, p.device = _stack_of(target, loc.device, stacks, diags)
        if loc is not None and loc.major == IRP_MJ_POWER and loc.minor == IRP_MN_WAIT_WAKE:
            p.normal = ("a wait-wake IRP stays pending at the device's bus driver until the device "
                        "signals wake: expected")
        r.pending.append(p)            # kept even if a Ctrl+Break comes while its threads are read
        if workers is None:
            workers = _by_module(a, _worker_threads(target, a))
        p.threads = _threads_of(a, p, holder, workers)
    r._io = (target, decoded, stacks)
    if holder:
        r.holder = _role(a, holder, "holds the PnP lock (bug check arg3)")
    waits = {}
    for role in [t for p in r.pending for t in p.threads] + ([r.holder] if r.holder is not None else []):
        if role.address not in waits:
            waits[role.address] = _depends_on(target, role, by_thread.get(role.address, ()), decoded, stacks, diags)
        role.depends_on = waits[role.address]


def _stack_of(target, device, stacks, diags):
    """(DeviceStack, Device) of `device`, each stack read once (`stacks`: device -> stack)."""
    st = stacks.get(device)
    if st is None:
        st = device_stack(target, device)
        diags.extend(d for d in st.diagnostics if d not in diags)
        for d in st.devices:
            stacks.setdefault(d.address, st)
    return st, next((d for d in st.devices if d.address == device), None)


USER_MODE = 1        # KPROCESSOR_MODE UserMode (wdm.h)


def _depends_on(target, role, irps, decoded, stacks, diags):
    """[WaitedIrp]: the IRPs on a waiting thread's IrpList that it waits for, pending at a
    driver (see the module's docstring for the evidence), the strongest evidence first."""
    f = role.facts
    if f is None or f.state != "Waiting":
        return []
    waited = {o for o, _ in f.waits_on}
    running_in = {fr.module.image.lower() for fr in f.frames or [] if fr.module is not None and fr.module.image}
    out = []
    for address in irps:
        irp = decoded.get(address)
        if irp is None:
            irp = decoded[address] = decode_irp(target, address)
            diags.extend(d for d in irp.diagnostics if d not in diags)
        loc = irp.current_loc
        if not irp.readable or irp.state != PENDING or loc is None or not loc.device:
            continue                   # completed, not yet sent or unreadable: held by no driver
        w = WaitedIrp(irp)
        w.sources = ["IrpList of thread 0x%x" % role.address]
        w.stack, w.device = _stack_of(target, loc.device, stacks, diags)
        module = w.module
        w.strong = irp.user_event is not None and irp.user_event != 0 and irp.user_event in waited
        if w.strong:
            w.evidence = ["it is on the thread's IrpList (a synchronous request it issued: IoQueueThreadIrp)",
                          "its UserEvent 0x%x is the object the thread waits on" % irp.user_event]
        elif role.path is not None or not waited:
            continue                   # it waits on a lock (its wait chain says for whom) or on nothing read
        elif irp.requestor_mode == USER_MODE:
            continue                   # a user thread's own I/O (overlapped reads): not what it waits for here
        elif module is not None and module.lower() in running_in:
            continue                   # pending at a driver the thread runs in: the IRP it is working on
        else:
            w.evidence = ["it is on the thread's IrpList, issued from kernel mode (a synchronous request: "
                          "IoQueueThreadIrp)",
                          "the thread has no frame in %s" % (module or "the driver holding it")]
        w.evidence.append("%s marked it pending (SL_PENDING_RETURNED)" % (module or "the driver")
                          if loc.pending else "its current location is not marked pending (SL_PENDING_RETURNED clear)")
        out.append(w)
    out.sort(key=lambda w: not w.strong)
    return out


def _facts(a, thread):
    t = a.thread_index.get(thread)
    return a.facts(t) if t is not None and a.facts is not None else None


def _role(a, thread, role):
    f = _facts(a, thread)
    if f is not None and thread not in a.threads:
        # outside the wait-for graph its held locks were not gathered: gather them now
        for lk in a.locks.values():
            for owner, mode in lk.owners:
                if owner == thread and (lk.address, mode) not in f.holds:
                    f.holds.append((lk.address, mode))
                    if lk.name is None and a.name_lock is not None:
                        lk.name, lk.device = a.name_lock(lk.address)
    return ThreadRole(thread, role, f, path_of(a, thread))


RUNNABLE = ("Ready", "Standby", "DeferredReady")


def _worker_threads(target, a):
    """Threads that may be running a driver's power or PnP dispatch: the power manager's IRP
    workers, waiting or runnable (a worker preempted in the middle of a dispatch routine is
    Ready or Standby, not Waiting), and every thread in the wait-for graph (their stacks are
    read already)."""
    out = []
    seen = set()
    for addr, f in sorted(a.pending.items()):
        start = (target.describe(f.thread.start_address) if f.thread.start_address else "").lower()
        worker = start.split("+")[0] in WORKER_STARTS
        if addr in a.threads or worker:
            out.append((not worker, addr))
            seen.add(addr)
    states = target.layouts().enum_names("_KTHREAD_STATE")
    for addr, t in sorted(a.thread_index.items()):
        if addr in seen or states.get(t.state) not in RUNNABLE or not t.start_address:
            continue
        if target.describe(t.start_address).lower().split("+")[0] in WORKER_STARTS:
            out.append((False, addr))
    return sorted(out)


MAX_OTHER_THREADS = 3       # wait-graph threads inside the holding driver shown per IRP; the rest counted


def _by_module(a, workers):
    """{image: ([power workers], [other threads])} with a frame in each driver image (one
    pass over their stacks, not one per IRP)."""
    out = {}
    for other, t in workers:
        f = _facts(a, t)
        for image in {fr.module.image for fr in (f.frames or []) if fr.module is not None} if f else ():
            out.setdefault(image, ([], []))[1 if other else 0].append(t)
    return out


def _threads_of(a, p, holder, workers):
    out, seen = [], set()

    def add(thread, role):
        if thread and thread not in seen:
            seen.add(thread)
            out.append(_role(a, thread, role))

    if holder and any(s == "IrpList of thread 0x%x" % holder for s in p.sources):
        add(holder, "holds the PnP lock (bug check arg3) and issued this IRP")
    if p.irp.thread:
        add(p.irp.thread, "issued this IRP (its thread)")
    mod = p.module
    if mod and p.normal is None:
        power, others = workers.get(mod, ((), ()))
        for t in power:
            f = _facts(a, t)
            how = "waiting" if f is None or f.state == "Waiting" else "%s (preempted)" % f.state.lower()
            add(t, "the power manager's IRP worker %s inside %s, the driver holding this IRP" % (how, mod))
        for t in others[:MAX_OTHER_THREADS]:
            add(t, "a thread waiting inside %s, the driver holding this IRP" % mod)
        p.more_threads = max(0, len(others) - MAX_OTHER_THREADS)
    return out


# -- blame -------------------------------------------------------------------------------------------

def _doing(f, a=None):
    if f is None:
        return "not in any thread list"
    if f.state == "Waiting":
        edges = [e for e in a.edges if e.thread == f.address] if a is not None else []
        if edges and not f.waits_on:
            lk = a.locks.get(edges[0].lock)
            what = "%s 0x%x%s" % (lk.kind if lk else "lock", edges[0].lock,
                                  " (%s)" % lk.name if lk is not None and lk.name else "")
            how = " for %s" % format_duration(f.seconds) if f.seconds is not None else ""
            return "waiting (%s) on %s%s" % (f.wait_reason, what, how)
        return wait_summary(f)
    return f.state.lower() if f.state else "in an unknown state"


def _where(f):
    return (" inside %s" % f.driver) if f is not None and f.driver else ""


def _at(p):
    drv = p.driver
    name = drv.name if drv is not None and drv.name else ("driver 0x%x" % drv.address if drv else "an unknown driver")
    dev = p.device
    devtxt = ""
    if dev is not None:
        devtxt = " (device 0x%x%s)" % (dev.address, " %s" % dev.name if dev.name else "")
    return name + devtxt


def _blame(target, r):
    bc = r.bugcheck
    sub = bc.subcode if bc else None
    if sub == 0x4:
        holder = r.holder
        mine = [p for p in r.pending if holder is not None and any(t.address == holder.address for t in p.threads)]
        focus = mine[0] if mine else None
        return _explain(r, focus, holder, "the PnP-lock holder")
    if sub == 0x3:
        focus = next((p for p in r.pending if p.irp.address == bc.args[3]), None)
        if focus is None or focus.location is None:
            state = focus.irp.state if focus is not None and focus.irp.readable else None
            why = ("the blocked IRP 0x%x (bug check arg4) %s" % (
                bc.args[3], "is unreadable" if state is None
                else "has been completed since (CurrentLocation = StackCount + 2)" if state == COMPLETED
                else "has not been sent to any driver (CurrentLocation = StackCount + 1)" if state == NOT_SENT
                else "is at no driver's stack location now"))
            return Culprit(None, bc.args[3], None, "No driver can be named: %s." % why)
        return _explain(r, focus, _blocked(focus), None)
    if sub in (0x1, 0x2, 0x500):
        # Microsoft's 0x9F page: 0x1 arg2 the device object; 0x2 arg3 the device object (arg2 the
        # target device's); 0x500 arg4 the device object (arg3 the target device's, arg2 reserved)
        at = {0x1: 1, 0x2: 2, 0x500: 3}[sub]
        device = bc.args[at] if len(bc.args) > at else 0
        dev = decode_device(target, device, r.diagnostics) if device else None
        target_txt = ""
        if sub in (0x2, 0x500):
            t_at = at - 1
            t_dev = bc.args[t_at] if len(bc.args) > t_at else 0
            if t_dev:
                td = decode_device(target, t_dev, r.diagnostics)
                target_txt = "; the target device (arg%d) is 0x%x%s%s" % (
                    t_at + 1, t_dev, " (%s)" % td.name if td.name else "",
                    ", of %s" % (td.driver.name or "driver 0x%x" % td.driver.address) if td.driver else "")
        if dev is None or dev.driver is None:
            return Culprit(None, None, None, "Bug check 0x9F subcode 0x%x: %s; the device object 0x%x "
                           "(arg%d) cannot be read%s." % (sub, bc.meaning, device, at + 1, target_txt))
        return Culprit(dev.driver.image or None, None, None,
                       "Bug check 0x9F subcode 0x%x: %s -- the device object (arg%d) 0x%x%s belongs to %s%s." % (
                           sub, bc.meaning, at + 1, device, " (%s)" % dev.name if dev.name else "",
                           dev.driver.name or "driver 0x%x" % dev.driver.address, target_txt))
    if sub is not None:
        return Culprit(None, None, None, "Bug check 0x9F subcode 0x%x: %s; pykd_ext names no driver "
                       "for this subcode (see !fxdevice on arg2)." % (sub, bc.meaning or "not documented"))
    stuck = [p for p in r.pending if p.normal is None and p.location is not None
             and p.location.major == IRP_MJ_POWER and (p.waited or 0) >= STUCK_SECONDS]
    if not stuck:
        return None
    focus = max(stuck, key=lambda p: p.waited)
    return _explain(r, focus, _blocked(focus), None)


def _blocked(p):
    """The thread blocked on the IRP's behalf: a waiting thread found working on it, else one
    that could run but does not (Ready/Standby: starved of its processor)."""
    for role in p.threads:
        if role.facts is not None and role.facts.state == "Waiting":
            return role
    for role in p.threads:
        if role.facts is not None and role.facts.state in RUNNABLE:
            return role
    return None


def _starved_by(a, f):
    """(reason text, the driver running on the processor the runnable thread waits for)."""
    from .waitgraph import _ready_reason, waited_processor
    text = _ready_reason(a, f)
    _, running = waited_processor(a, f)
    other = a.thread_index.get(running) if running is not None else None
    driver = None
    if other is not None and a.facts is not None:
        of = a.facts(other)
        driver = of.driver if of is not None else None
    return text, driver


def _explain(r, focus, blocked, who):
    """The culprit from the IRP being held and the thread blocked on its behalf."""
    if blocked is not None and blocked.path is None and blocked.depends_on:
        return _explain_waits_for(r, focus, blocked, who, blocked.depends_on[0])
    irp = focus.irp.address if focus is not None else None
    f = blocked.facts if blocked is not None else None
    parts = []
    if focus is not None:
        held = "IRP 0x%x (%s) is pending at %s" % (irp, focus.request, _at(focus))
        if focus.waited is not None:
            held += " for at least %s" % format_duration(focus.waited)
        parts.append(held)
    module = thread = root = None
    if blocked is not None:
        thread = blocked.address
        who = _who(blocked, who)
        cid = " (Cid %s)" % f.thread.cid if f is not None else ""
        if f is not None and f.state in RUNNABLE and r.waits is not None:
            text, busy = _starved_by(r.waits, f)
            parts.append("%s thread 0x%x%s%s is %s -- starved: it has not run" % (
                who, blocked.address, cid, _where(f), text))
            if busy:
                parts.append("%s runs there instead" % busy)
                module = busy
        else:
            parts.append("%s thread 0x%x%s is %s%s" % (who, blocked.address, cid, _doing(f, r.waits), _where(f)))
        path = blocked.path
        if path is not None and path[0] == "chain":
            ch, edges = path[1], path[2]
            rf = r.waits.threads.get(ch.root) if r.waits is not None else None
            if ch.root_kind == "thread" and ch.root != blocked.address:
                root = ch.root
                locks = len(edges)
                doing = ("sleeping (%s)" % rf.wait_reason if rf is not None and is_sleeping(rf)
                         else _doing(rf, r.waits))
                parts.append("its wait chain through %d lock%s ends at thread 0x%x, which is %s%s while "
                             "holding %s" % (locks, "" if locks == 1 else "s", ch.root, doing, _where(rf),
                                             "it" if locks == 1 else "the last of them"))
                if rf is not None and rf.driver:
                    module, thread = rf.driver, ch.root
            elif ch.root_kind != "thread":
                parts.append("the lock it waits for %s" % ch.reason)
        elif path is not None and path[0] == "cycle":
            parts.append("it is in a deadlock cycle of %d threads" % len(path[1].threads))
        if module is None and f is not None and f.driver:
            module = f.driver
    if module is None and focus is not None:
        module = focus.module
    if focus is None and blocked is None:
        return Culprit(None, None, None, "Nothing found to blame: no pending IRP and no blocked thread were read.")
    if focus is None:
        parts.append("no pending power or PnP IRP of this thread was found")
    elif blocked is None and focus.location is not None:
        parts.append("no thread is blocked on its behalf: %s has neither completed it nor passed it down"
                     % (focus.driver.name if focus.driver and focus.driver.name else "the driver"))
    reason = "; ".join(parts) + "."
    reason = reason[0].upper() + reason[1:]
    return Culprit(module, irp, thread, reason, pending=focus, blocked=blocked, root=root)


def _who(blocked, who):
    if who is not None:
        return who
    return ("its worker" if blocked.role.startswith("the power manager's") else
            "its own" if blocked.role.startswith("issued") else "a")


def _waited_at(w):
    loc = w.location
    drv, dev = w.driver, w.device
    return "%s (%s, device 0x%x%s)" % (
        w.module or "an unknown driver",
        drv.name if drv is not None and drv.name else ("driver 0x%x" % drv.address if drv is not None else "no driver"),
        loc.device, " %s" % dev.name if dev is not None and dev.name else "")


def _explain_waits_for(r, focus, blocked, who, w):
    """The culprit when the thread blocked on the IRP's behalf waits for an IRP it issued,
    pending at another driver: P <- thread <- w @ B; B is blamed."""
    f = blocked.facts
    at = _waited_at(w)
    cid = " (Cid %s)" % f.thread.cid if f is not None else ""
    parts = ["%s thread 0x%x%s waits%s for IRP 0x%x (%s) pending at %s, which neither completed it nor passed "
             "it down: %s" % (_who(blocked, who), blocked.address, cid,
                              " in %s" % f.driver if f is not None and f.driver else "",
                              w.irp.address, w.request, at, ", ".join(w.evidence))]
    if f is not None:
        parts.append("the thread is %s" % _doing(f, r.waits))
    if focus is not None:
        held = "it was handling IRP 0x%x (%s), pending at %s" % (focus.irp.address, focus.request, _at(focus))
        if focus.waited is not None:
            held += " for at least %s" % format_duration(focus.waited)
        parts.append(held)
    further, note = _follow(r, blocked, w)
    for u, x in further:
        uf = u.facts
        parts.append("thread 0x%x%s is %s (an inference from its stack: the kernel records no tie between an IRP "
                     "a driver queued and the thread serving it), and it waits for IRP 0x%x (%s) pending at %s, "
                     "which neither completed it nor passed it down: %s" % (
                         u.address, " (Cid %s)" % uf.thread.cid if uf is not None else "", u.role,
                         x.irp.address, x.request, _waited_at(x), ", ".join(x.evidence)))
    if note:
        parts.append(note)
    reason = "; ".join(parts) + "."
    reason = reason[0].upper() + reason[1:]
    last = further[-1][1] if further else w
    c = Culprit(last.module, focus.irp.address if focus is not None else None, blocked.address, reason,
                pending=focus, blocked=blocked, waits_for=w)
    c.further, c.chain_note = further, note
    return c


MAX_CHAIN_IRPS = 4     # IRPs followed from the blocked thread (Q, R, ...): deeper chains are cut with a note


def _inside(a, module, threads):
    """Waiting threads whose first driver frame (not the kernel, not a framework) is in
    `module`, among `threads` (those with an IRP on their IrpList: a thread that waits for an
    IRP it issued has one), in address order."""
    out = []
    for t in sorted(threads):
        seen = a.pending.get(t)              # its state is read already; its stack only if it waits
        if seen is None or seen.state != "Waiting":
            continue
        f = _facts(a, t)
        if f is not None and f.state == "Waiting" and f.driver and f.driver.lower() == module.lower():
            out.append(t)
    return out


def _follow(r, blocked, w):
    """([(ThreadRole U, WaitedIrp R)], note or None): from IRP w pending at B, a thread U
    waiting inside B that waits for an IRP R it issued, then R's driver, and so on."""
    a = r.waits
    if a is None or r._io is None:
        return [], None
    target, decoded, stacks = r._io
    seen_irps = {w.irp.address}
    if r.pending:
        seen_irps.update(p.irp.address for p in r.pending if blocked is not None
                         and any(t.address == blocked.address for t in p.threads))
    seen_threads = {blocked.address}
    listed = [t for t, irps in r.irp_lists.items() if irps]
    out, cur = [], w
    while True:
        module = cur.module
        if not module:
            return out, None
        hop = None
        for t in _inside(a, module, listed):
            if t in seen_threads:
                continue
            role = _role(a, t, "a thread waiting inside %s, the driver holding IRP 0x%x" % (module, cur.irp.address))
            role.depends_on = _depends_on(target, role, r.irp_lists.get(t, ()), decoded, stacks, r.diagnostics)
            if role.depends_on:
                hop = (role, role.depends_on[0])
                break
        if hop is None:
            looped = [t for t in _inside(a, module, listed) if t in seen_threads]
            if looped:
                return out, ("the chain loops: thread 0x%x, already in it, is waiting inside %s, the driver "
                             "holding IRP 0x%x (the drivers of the loop wait for each other)"
                             % (looped[0], module, cur.irp.address))
            return out, None
        role, x = hop
        if len(out) + 1 >= MAX_CHAIN_IRPS:
            return out, ("the chain is cut after %d IRPs: thread 0x%x waiting inside %s waits for IRP 0x%x "
                         "further (at %s)" % (MAX_CHAIN_IRPS, role.address, module, x.irp.address,
                                              x.module or "an unknown driver"))
        if x.irp.address in seen_irps:
            return out, ("the chain loops: thread 0x%x waiting inside %s waits for IRP 0x%x, already in it"
                         % (role.address, module, x.irp.address))
        seen_threads.add(role.address)
        seen_irps.add(x.irp.address)
        out.append(hop)
        cur = x
