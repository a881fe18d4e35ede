"""Renderers of the wait-for analysis: text for people, JSON for programs, DOT for graphviz."""
import json

from tabulate import tabulate

from ..analysis.waitgraph import format_duration, reported_locks
from .doc import document, hx, lock_kind, lock_name, note_read_budget, write_partial_headline

SCHEDULER_FRAMES = ("nt!kiswapcontext", "nt!kiswapthread", "nt!kicommitthreadwait")
TOP_FRAMES = 4


def lock_ref(a, addr):
    """{"lock_kind", "lock_name"} of a lock the analysis knows (nulls for one it does not)."""
    lk = a.locks.get(addr) if a is not None and addr is not None else None
    return {"lock_kind": lock_kind(lk.kind) if lk else None, "lock_name": lock_name(lk.name) if lk else None}


def holds_list(f, a):
    """A thread's "holds": [{"lock", "lock_kind", "lock_name", "mode"}]."""
    out = []
    for addr, mode in f.holds:
        h = {"lock": hx(addr)}
        h.update(lock_ref(a, addr))
        h["mode"] = mode
        out.append(h)
    return out


def edge_dict(e, a):
    """One wait: the thread, the lock it waits for (with its kind and name), who holds it."""
    d = {"thread": hx(e.thread), "lock": hx(e.lock)}
    d.update(lock_ref(a, e.lock))
    d.update({"mode": e.mode, "held_by": hx(e.holder), "evidence": e.evidence,
              "or_any_of": [hx(o) for o in e.any_of]})
    return d


# -- findings as plain data (the JSON document) --------------------------------------------------

def thread_dict(f, a=None):
    t = f.thread
    return {"thread": hx(t.address), "cid": t.cid, "process": t.process.name if t.process else None,
            "start": f.start_symbol, "state": f.state, "wait_reason": f.wait_reason,
            "wait_ticks": f.ticks, "wait_seconds": None if f.seconds is None else round(f.seconds, 3),
            "wait_is_slice": f.wait_slice,
            "wait_seconds_at_least": None if f.seconds is None else round(
                f.seconds + 0.5 if f.wait_slice and f.seconds > 0.5 else f.seconds, 3),
            "holds": holds_list(f, a),
            "waits_on_objects": [{"object": hx(o), "type": k} for o, k in f.waits_on],
            "module": f.driver, "stack": [fr.symbol for fr in f.frames or []]}


def to_dict(a, target_name=None, build=None):
    cycles = []
    for c in a.cycles:
        cycles.append({"threads": [hx(t) for t in c.threads], "locks": [hx(l) for l in c.locks],
                       "edges": [edge_dict(e, a) for e in c.edges],
                       "conditional_on": [hx(o) for o in c.conditional],
                       "inferred_owners": [{"lock": hx(lk), "owner": hx(o), "evidence": ev}
                                           for lk, o, ev in c.inferred],
                       "modules": _drivers(a, c.threads)})
    chains = []
    for ch in a.chains:
        waiters = []
        for p in ch.paths:
            if p and hx(p[0].thread) not in waiters:
                waiters.append(hx(p[0].thread))
        chains.append({"root": hx(ch.root), "root_kind": ch.root_kind, "reason": ch.reason,
                       "root_evidence": ch.root_evidence or "recorded",
                       "suspected_cross_object": None if not ch.suspected else {
                           "events": [{"event": hx(o), "where": w} for o, w in ch.suspected["events"]],
                           "same_driver_waiters": [hx(t) for t in ch.suspected["same_driver_waiters"]],
                           "reason": ch.suspected["reason"]},
                       "module": a.threads[ch.root].driver if ch.root in a.threads else None,
                       "waiters": waiters, "paths": [[edge_dict(e, a) for e in p] for p in ch.paths]})
    return document(
        "deadlock", target_name, build, a.interrupted, a.diagnostics,
        scanned=dict(a.counts), cycles=cycles, chains=chains,
        threads={hx(k): thread_dict(f, a) for k, f in sorted(a.threads.items())},
        locks={hx(k): {"lock": hx(k), "lock_kind": lock_kind(l.kind), "lock_name": lock_name(l.name),
                       "owners": [{"owner": hx(o), "mode": m,
                                   "owner_pointer": hx(l.owner_pointers.get(o)),
                                   "evidence": l.owner_evidence.get(o, "recorded")} for o, m in l.owners],
                       "owner_candidates": [hx(t) for t in l.candidates],
                       "lock_word": l.word,
                       "waiters_in_owner_entries": [hx(t) for t in l.queued],
                       "note": l.note,
                       "waiters": [hx(w) for w in l.waiters]} for k, l in sorted(reported_locks(a).items())},
        spin_locks=[r.as_dict(a.locks[r.address].name if r.address in a.locks else None)
                    for r in a.spin_locks],
        verifier=_verifier_dict(a))


def _verifier_dict(a):
    v = getattr(a, "verifier", None)
    if v is None:
        return None
    return {"available": v.available, "reason": v.reason, "instigator": hx(v.instigator) if v.instigator else None,
            "participants": [{"thread": hx(p.thread), "lock": hx(p.lock), "lock_type": p.lock_type,
                              "node": hx(p.node), "stack": list(p.symbols)} for p in v.participants]}


def render_json(a, out, target_name=None, build=None, target=None):
    doc = note_read_budget(to_dict(a, target_name, build), target)
    json.dump(doc, out, indent=2, sort_keys=False)
    out.write("\n")
    return doc


def _drivers(a, threads):
    out = []
    for t in threads:
        f = a.threads.get(t)
        if f is not None and f.driver and f.driver not in out:
            out.append(f.driver)
    return out


# -- text ----------------------------------------------------------------------------------------

def links(a):
    """{address: debugger command} for every thread, lock and device the findings name."""
    out = {}
    for addr in a.thread_index:
        out[addr] = "!thread 0x%x" % addr
    for n, d in a.graph.nodes(data=True):
        if d.get("kind") == "thread":
            out[n] = "!thread 0x%x" % n
    for addr, lk in a.locks.items():
        if lk.typename == "KSPIN_LOCK":
            # KSPIN_LOCK is a ULONG_PTR, no structure to dt: the lock word itself
            out[addr] = "dq 0x%x L1" % addr
        else:
            out[addr] = "dt nt!%s 0x%x" % (lk.typename or "_DISPATCHER_HEADER", addr)
        if lk.device:
            out[lk.device] = "!devstack 0x%x" % lk.device
    for f in a.threads.values():
        for obj, _ in f.waits_on:
            out.setdefault(obj, "dt nt!_DISPATCHER_HEADER 0x%x" % obj)
    return out


class TextRenderer(object):
    def __init__(self, a, out, style):
        self.a = a
        self.out = out
        self.s = style

    def w(self, text=""):
        self.out.write(text + "\n")

    def lock_label(self, addr):
        lk = self.a.locks.get(addr)
        kind = lk.kind if lk else "lock"
        text = "0x%x" % addr
        name = lk.name if lk else ""
        word = " [%s]" % lk.word if lk is not None and lk.word else ""
        return "%s %s%s%s" % (kind, self.s("addr", text), (" (%s)" % name) if name else "", word)

    def thread_label(self, addr):
        f = self.a.threads.get(addr)
        link = self.s("addr", "0x%x" % addr)
        if f is None:
            return "thread %s (not in any thread list)" % link
        t = f.thread
        proc = t.process.name if t.process else "?"
        return "thread %s  Cid %s  %s  %s" % (link, t.cid, proc, f.start_symbol or "?")

    def wait_text(self, f):
        if f is None or f.ticks is None:
            return ""
        if f.wait_slice:
            # ExpWaitForResource waits 0.5 s, then re-waits every 4 s; each wait resets
            # KTHREAD.WaitTime.  A slice over 0.5 s is at least the second wait: the whole wait
            # is at least 0.5 s longer than it
            if f.seconds is not None and f.seconds > 0.5:
                return "current wait slice %d ticks (%s), so waiting at least %s " \
                       "(ExpWaitForResource re-waits every 4 s; the whole wait is not recorded)" % (
                           f.ticks, format_duration(f.seconds), format_duration(f.seconds + 0.5))
            return "current wait slice %d ticks (%s; ExpWaitForResource re-waits every 4 s, " \
                   "the whole wait is not recorded)" % (f.ticks, format_duration(f.seconds))
        return "%d ticks (%s)" % (f.ticks, format_duration(f.seconds))

    def stack_text(self, f):
        frames = [fr for fr in f.frames or [] if (fr.function or "").lower() not in SCHEDULER_FRAMES]
        syms = [fr.symbol for fr in frames[:TOP_FRAMES]]
        more = " ..." if len(frames) > TOP_FRAMES else ""
        return " < ".join(syms) + more

    def thread_block(self, addr, bar, indent="    "):
        f = self.a.threads.get(addr)
        if f is None:
            return
        for lock, mode in f.holds:
            lk = self.a.locks.get(lock)
            ptr = lk.owner_pointers.get(addr) if lk is not None else None
            how = " (owner pointer 0x%x: the actual thread)" % ptr if ptr else ""
            self.w("%s%sholds      %s %s%s" % (bar, indent, self.lock_label(lock), mode, how))
        if f.frames:
            self.w("%s%sstack      %s" % (bar, indent, self.stack_text(f)))
        if f.driver:
            self.w("%s%sdriver     %s" % (bar, indent, self.s("drv", f.driver)))

    def render(self, header):
        a, s = self.a, self.s
        self.w(s("head", header))
        # a partial run says so first: what follows is what was read before the stop (or around
        # what could not be read), not the whole machine
        write_partial_headline(document("deadlock", None, None, a.interrupted, a.diagnostics), self.w, s)
        self.w("scanned %d processes, %d threads, %d ERESOURCEs" % (
            a.counts["processes"], a.counts["threads"], a.counts["resources"]))
        self.w()
        if not a.cycles and not a.chains:
            self.w("Nothing found before the interruption." if a.interrupted else
                   "No deadlock cycle and no thread waiting on an owned lock was found.")
        for i, c in enumerate(a.cycles, 1):
            drivers = _drivers(a, c.threads)
            self.w(s("bad", "%sDEADLOCK %d: %d thread%s, %d lock%s" % (
                "POSSIBLE " if c.conditional else "", i, len(c.threads), "s" if len(c.threads) > 1 else "",
                len(c.locks), "s" if len(c.locks) > 1 else "")) +
                (" -- look at " + s("drv", ", ".join(drivers)) if drivers else ""))
            for lk, o, ev in c.inferred:
                if ev == "stack-pattern":
                    self.w("  a self-wait read from the stack's shape: %s" % a.locks[lk].note)
                    continue
                self.w("  the owner 0x%x of %s is inferred (%s), not recorded by the kernel" % (
                    o, self.lock_label(lk), ev))
            if c.conditional:
                self.w("  a WaitAny wait: the cycle breaks if any of %s is signalled"
                       % ", ".join(self.s("addr", "0x%x" % o) for o in c.conditional))
            for j, e in enumerate(c.edges):
                f = a.threads.get(e.thread)
                first = j == 0
                self.w("  %s %s" % ("+->" if first else "|  ", self.thread_label(e.thread)))
                self.thread_block(e.thread, "  |  ")
                ev = s("dim", "[%s]" % e.evidence)
                self.w("  |      waits for  %s %s, %s %s" % (self.lock_label(e.lock), e.mode, self.wait_text(f), ev))
                lk = a.locks.get(e.lock)
                ev = lk.owner_evidence.get(e.holder) if lk is not None else None
                how = " (owner inferred: %s)" % ev if ev else ""
                self.w("  |        which is held %s by%s" % (a.graph.edges[e.lock, e.holder]["mode"], how)
                       if a.graph.has_edge(e.lock, e.holder) else "  |        which is held by%s" % how)
            self.w("  +-- %s %s" % (self.thread_label(c.threads[0]), s("dim", "(the first thread: a cycle)")))
            self.w()
        for i, ch in enumerate(a.chains, 1):
            waiters = sorted({p[0].thread for p in ch.paths if p})
            root_f = a.threads.get(ch.root)
            look = " -- look at " + s("drv", root_f.driver) if root_f and root_f.driver else ""
            self.w(s("warn", "WAIT CHAIN %d: %d waiter%s behind one root blocker" % (
                i, len(waiters), "s" if len(waiters) > 1 else "")) + look)
            if ch.root_kind == "thread":
                self.w("  root  %s%s" % (self.thread_label(ch.root),
                                         (" " + s("warn", "[owner inferred: %s]" % ch.root_evidence))
                                         if ch.root_evidence else ""))
            else:
                self.w("  root  %s" % self.lock_label(ch.root))
            self.w("        %s" % s("bad", ch.reason))
            if ch.suspected:
                self.w("        %s %s" % (s("warn", "SUSPECTED CROSS-OBJECT DEADLOCK:"), ch.suspected["reason"]))
            if ch.root_kind == "thread":
                self.thread_block(ch.root, "", indent="        ")
            for p in ch.paths:
                for k, e in enumerate(p):
                    f = a.threads.get(e.thread)
                    lead = "  <-  " if k == 0 else "        then "
                    self.w(lead + self.thread_label(e.thread))
                    self.w("          waits for %s %s, %s %s" % (self.lock_label(e.lock), e.mode, self.wait_text(f),
                                                               s("dim", "[%s]" % e.evidence)))
                    if f is not None and f.driver:
                        self.w("          driver    %s" % s("drv", f.driver))
            self.w()
        if a.spin_locks:
            self.spin_section()
        if a.graph.number_of_nodes():
            self.threads_table()
        v = getattr(a, "verifier", None)
        if v is not None and v.participants:
            self.verifier_section(v)
        if a.diagnostics:
            self.w(s("warn", "WARNINGS (%d): results may be partial" % len(a.diagnostics)))
            for d in a.diagnostics:
                self.w("  - %s" % d.message)


    def spin_section(self):
        """Each spin lock a processor spins on: the spinners, and the holder as the queue records
        it, or the candidates (never called owners) where the lock records none."""
        s = self.s
        self.w(s("head", "SPIN LOCKS"))
        for r in self.a.spin_locks:
            if r.address is None:
                for sp in r.spinners:
                    self.w("  CPU %d spins in %s (%s): no held spin lock was found in its acquire frames" % (
                        sp.cpu.index, sp.function, self.thread_label(sp.thread)))
                continue
            num = " (KPRCB.LockQueue[%d])" % r.number if r.number is not None else ""
            self.w("  %s%s" % (self.lock_label(r.address), num))
            for sp in r.spinners:
                self.w("    spinning  CPU %d  %s  in %s %s" % (sp.cpu.index, self.thread_label(sp.thread), sp.function,
                                                            s("dim", "[%s]" % sp.evidence)))
            if r.holder is not None:
                cpu, th, ev = r.holder
                where = "CPU %d  " % cpu if cpu is not None else ""
                self.w("    held by   %s%s %s" % (where, self.thread_label(th), s("dim", "[recorded: %s]" % ev)))
            for cpu, th, ev in r.candidates:
                self.w("    candidate CPU %d  %s %s" % (cpu, self.thread_label(th), s("warn", "[inferred: %s]" % ev)))
            if r.holder is None and r.candidates:
                evs = {ev for _, _, ev in r.candidates}
                how = [h for e, h in (("dispatch-same-module", "dispatch-same-module: in a DPC or ISR, or at the "
                                       "DISPATCH_LEVEL or above it saved when it bug checked"),
                                      ("same-module-thread", "same-module-thread: in a thread, at an IRQL nothing "
                                       "recorded")) if e in evs]
                self.w("    (a plain spin lock records no owner: a candidate runs %s code -- %s; it is not known to "
                       "hold the lock)" % (r.module, "; ".join(how)))
            if r.module:
                self.w("    driver    %s" % s("drv", r.module))
        self.w()

    def verifier_section(self, v):
        """The lock-order inversion Driver Verifier recorded (what !deadlock shows)."""
        s = self.s
        self.w(s("bad", "DRIVER VERIFIER DEADLOCK DATABASE: %d participant%s" % (
            len(v.participants), "s" if len(v.participants) > 1 else "")))
        if v.instigator:
            self.w("  instigator: the acquisition of 0x%x closed the cycle" % v.instigator)
        for p in v.participants:
            stack = " < ".join(p.symbols[:4])
            self.w("  thread %s acquired %s %s%s" % (s("addr", "0x%x" % p.thread), p.lock_type or "lock",
                                                   s("addr", "0x%x" % p.lock), (" at " + stack) if stack else ""))
        self.w()

    def threads_table(self):
        """Every thread in the graph at a glance: what it holds, what it waits for, how long."""
        a = self.a
        rows = []
        for addr in sorted(n for n, d in a.graph.nodes(data=True) if d.get("kind") == "thread"):
            f = a.threads.get(addr)
            waits = ["0x%x %s" % (l, a.graph.edges[addr, l]["mode"]) for l in a.graph.successors(addr)]
            if f is None:
                rows.append(["0x%x" % addr, "?", "?", "not found", "", "", ", ".join(waits), ""])
                continue
            t = f.thread
            state = f.state if f.state != "Waiting" else "Waiting/%s" % f.wait_reason
            rows.append(["0x%x" % addr, t.cid, t.process.name if t.process else "?", state,
                         ("slice " if f.wait_slice else "") + format_duration(f.seconds)
                         if f.seconds is not None else "",
                         ", ".join("0x%x %s" % (l, m[:4]) for l, m in f.holds),
                         ", ".join(w.replace("exclusive", "excl") for w in waits), f.driver or ""])
        self.w(self.s("head", "THREADS"))
        table = tabulate(rows, headers=["thread", "Cid", "process", "state", "waited", "holds",
                                        "waits for", "driver"], tablefmt="simple", disable_numparse=True)
        for line in table.splitlines():
            self.w("  " + line)
        self.w()


def render_text(a, out, style, header):
    TextRenderer(a, out, style).render(header)


def _dot(text):
    """A DOT string literal's body: backslashes and quotes escaped (a driver name such as
    \\Driver\\TestDriver would otherwise lose its backslashes), line breaks as \\n."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_dot(a, out, title=None):
    in_cycle = set()
    for c in a.cycles:
        in_cycle.update(c.threads)
        in_cycle.update(c.locks)
    roots = {ch.root for ch in a.chains}
    out.write("digraph waitfor {\n  rankdir=LR;\n")
    caption = title or "wait-for graph"
    caption += "\n%d cycle%s, %d chain%s" % (len(a.cycles), "" if len(a.cycles) == 1 else "s",
                                           len(a.chains), "" if len(a.chains) == 1 else "s")
    if a.interrupted or a.diagnostics:
        caption += "\nPARTIAL: %s" % ("interrupted (%s)" % a.interrupted if a.interrupted
                                      else "%d warning%s" % (len(a.diagnostics), "" if len(a.diagnostics) == 1 else "s"))
    out.write('  labelloc=t; label="%s";\n' % _dot(caption))
    if not a.graph.number_of_nodes():
        out.write('  empty [shape=plaintext label="%s"];\n' % _dot(
            "no thread waits on a lock" + (" (before the interruption)" if a.interrupted else "")))
    for n, d in sorted(a.graph.nodes(data=True)):
        if d.get("kind") == "thread":
            f = a.threads.get(n)
            label = "thread 0x%x\n%s" % (n, f.start_symbol if f else "?")
            shape = "ellipse"
        else:
            lk = a.locks.get(n)
            label = "%s 0x%x%s" % (lk.kind if lk else "lock", n, ("\n" + lk.name) if lk and lk.name else "")
            shape = "box"
        color = ' color=red' if n in in_cycle else ""
        if n in roots and n not in in_cycle:
            color += ' color=orange penwidth=2 xlabel="root blocker"'
        out.write('  "0x%x" [shape=%s label="%s"%s];\n' % (n, shape, _dot(label), color))
    for u, v, d in sorted(a.graph.edges(data=True)):
        style = ""
        if "evidence" in d:
            label = "waits %s [%s]" % (d.get("mode"), d.get("evidence"))
        else:
            lk = a.locks.get(u)
            inferred = lk.owner_evidence.get(v) if lk is not None else None
            mode = d.get("mode")
            label = "held" + ("" if mode in ("held", None) else " %s" % mode)
            if inferred:                         # an owner the kernel did not record
                label += " (inferred: %s)" % inferred
                style = " style=dashed"
        color = (' color=red' if u in in_cycle and v in in_cycle else "") + style
        out.write('  "0x%x" -> "0x%x" [label="%s"%s];\n' % (u, v, _dot(label), color))
    out.write("}\n")
