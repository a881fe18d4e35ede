"""Processes (nt!PsActiveProcessHead) and their threads (_EPROCESS.ThreadListHead).

    processes(target)            -> Walk of Process
    threads(target, process)     -> Walk of Thread
    all_threads(target)          -> (processes, threads, Diagnostics)
"""
from ..errors import FieldNotFound, MemoryFault, SymbolNotFound
from ..progress import report
from ..render.out import printable
from .diag import Diagnostics
from .lists import walk_list
from .views import Struct


class Process(object):
    __slots__ = ("address", "pid", "name", "readable")

    def __init__(self, address, pid=None, name="?", readable=True):
        self.address, self.pid, self.name, self.readable = address, pid, name, readable

    def __repr__(self):
        return "Process(0x%x %s)" % (self.address, self.name)


class Thread(object):
    """A kernel thread as the wait-for analysis needs it (decoded once, from one read)."""
    __slots__ = ("address", "process", "pid", "tid", "state", "wait_reason", "wait_time",
                 "start_address", "stack_base", "stack_limit", "kernel_stack", "view")

    def __init__(self, address, process):
        self.address = address
        self.process = process
        self.pid = self.tid = None
        self.state = self.wait_reason = self.wait_time = None
        self.start_address = 0
        self.stack_base = self.stack_limit = self.kernel_stack = 0
        self.view = None

    @property
    def cid(self):
        if self.pid is None:
            return "?"
        return "%04x.%04x" % (self.pid, self.tid)

    def on_stack(self, address):
        return self.stack_limit <= address < self.stack_base

    def __repr__(self):
        return "Thread(0x%x %s)" % (self.address, self.cid)


# Warnings kept from all thread-list walks together: a corrupt process list (thousands of
# copies of one process) gives a warning per process, and every consumer merges warnings
# by comparing each with those it holds; past this many, one line counts the rest.
MAX_THREAD_WARNINGS = 256


def decode_process(target, addr):
    p = Struct(target, "_EPROCESS", addr)
    try:
        pid = p["UniqueProcessId"]
        name = printable(p.raw("ImageFileName")[:64].split(b"\0", 1)[0].decode("latin-1")) or "?"
        return Process(addr, pid, name)
    except MemoryFault:
        return Process(addr, None, "?", readable=False)


def processes(target, cap=100000):
    lay = target.layouts().layout("_EPROCESS")
    head = target.symbol("nt!PsActiveProcessHead")
    w = walk_list(target, head, lay.offset("ActiveProcessLinks"), "process list (nt!PsActiveProcessHead)", cap)
    w.items = [decode_process(target, a) for a in w.items]
    return w


def decode_thread(target, addr, process):
    """A Thread from the _ETHREAD at addr; MemoryFault if its core fields are unreadable."""
    t = Thread(addr, process)
    e = Struct(target, "_ETHREAD", addr)
    k = e.sub("Tcb", "_KTHREAD")
    t.view = k
    t.state = k["State"]
    t.wait_reason = k["WaitReason"]
    t.wait_time = k["WaitTime"]
    t.stack_base = k["StackBase"]
    t.stack_limit = k["StackLimit"]
    t.kernel_stack = k["KernelStack"]
    cid = e.sub("Cid")
    try:
        t.pid, t.tid = cid["UniqueProcess"], cid["UniqueThread"]
    except MemoryFault:
        pass
    for name in ("Win32StartAddress", "StartAddress"):
        try:
            v = e.get(name, 0)
        except MemoryFault:
            v = 0
        if v:
            t.start_address = v
            break
    return t


def threads(target, process, cap=100000):
    elay = target.layouts().layout("_EPROCESS")
    tlay = target.layouts().layout("_ETHREAD")
    w = walk_list(target, process.address + elay.offset("ThreadListHead"), tlay.offset("ThreadListEntry"),
                  "thread list of process 0x%x (%s)" % (process.address, process.name), cap)
    out = []
    for a in w.items:
        try:
            out.append(decode_thread(target, a, process))
        except MemoryFault as e:
            w.diagnostics.add("unreadable", "thread 0x%x of %s: unreadable at 0x%x" % (a, process.name, e.address),
                              e.address)
            w.complete = False
    w.items = out
    return w


def all_threads(target):
    """Every process and every thread reachable, with the warnings of every walk."""
    diags = Diagnostics()
    try:
        pw = processes(target)
    except (SymbolNotFound, FieldNotFound) as e:
        diags.add("missing-symbol", "cannot list processes: %s" % e)
        return [], [], diags
    diags.extend(pw.diagnostics)
    procs = pw.items
    ths = []
    kept, dropped = {(d.kind, d.message) for d in diags}, 0
    for p in procs:
        if not p.readable:
            diags.add("unreadable", "process 0x%x is unreadable: its threads are not listed" % p.address, p.address)
            continue
        tw = threads(target, p)
        for d in tw.diagnostics:
            key = (d.kind, d.message)
            if key in kept:
                continue
            if len(kept) < MAX_THREAD_WARNINGS:
                kept.add(key)
                diags.append(d)
            else:
                dropped += 1
        ths.extend(tw.items)
        report(target, "threads decoded", len(ths))
    if dropped:
        diags.add("cap", "%d more warnings from thread lists not listed (the first %d are)"
                  % (dropped, MAX_THREAD_WARNINGS))
    return procs, ths, diags


def thread_summary(target, thread):
    """(Cid, process name) of a thread, or None when it cannot be read."""
    if not thread:
        return None
    try:
        t = decode_thread(target, thread, None)
        return "%04x.%04x" % (t.pid, t.tid), decode_process(target, t.view["Process"]).name
    except MemoryFault:
        return None
