"""Renderers of the power IRP analysis: one plain-data document (the JSON), and text for
people drawn from that same document (DML inside WinDbg)."""
from tabulate import tabulate

from ..analysis.waitgraph import format_duration
from .deadlock import edge_dict, thread_dict
from .deadlock import links as deadlock_links
from .doc import bugcheck_dict, document, hx, kind_label, write_partial_headline
from .io import device_links, device_ref, driver_label, location_dict
from .style import wrap

#: where pending IRPs were looked for: JSON keys (lower-case words) and the names the text uses
SOURCE_KEYS = {"PopIrpList": "pop_irp_list", "thread IRP lists": "thread_irp_lists", "device tree": "device_tree"}
SOURCE_LABELS = {v: k for k, v in SOURCE_KEYS.items()}
SCHEDULER = ("nt!kiswapcontext", "nt!kiswapthread", "nt!kicommitthreadwait")


def _role_dict(role, a):
    f = role.facts
    d = {"thread": hx(role.address), "role": role.role}
    if f is not None:
        d.update(thread_dict(f, a))
    else:
        d["state"] = None
    d["wait_chain"] = None
    if role.path is not None and role.path[0] == "chain":
        ch, edges = role.path[1], role.path[2]
        d["wait_chain"] = {"root": hx(ch.root), "root_kind": ch.root_kind, "reason": ch.reason,
                           "root_module": a.threads[ch.root].driver if ch.root in a.threads else None,
                           "edges": [edge_dict(e, a) for e in edges]}
    elif role.path is not None and role.path[0] == "cycle":
        c = role.path[1]
        d["wait_chain"] = {"cycle": [hx(t) for t in c.threads], "edges": [edge_dict(e, a) for e in c.edges]}
    d["depends_on"] = [waited_dict(w) for w in role.depends_on]
    return d


def _pending_at(p):
    """Where an IRP is pending, in the vocabulary's device shape (render.io.device_ref)."""
    loc = p.location
    if loc is None:
        return None
    return device_ref(loc.device, p.device, p.driver, p.module)


def waited_dict(w):
    """An IRP a thread waits for (analysis.power.WaitedIrp): where it is pending and why it is
    taken to be the one waited for."""
    loc = w.location
    return {"irp": hx(w.irp.address), "major": loc.major_name, "minor": loc.minor_name,
            "io_control_code": hx(loc.ioctl), "request": w.request,
            "location": {"number": loc.number, "of": w.irp.stack_count, "address": hx(loc.address)},
            "pending_at": _pending_at(w), "marked_pending": loc.pending,
            "user_event": hx(w.irp.user_event) if w.irp.user_event else None,
            "evidence": list(w.evidence)}


def _chain(c):
    """The culprit's chain when the blocked thread waits for an IRP: [the IRP it was handling,]
    the thread, the IRP it waits for, then for each further link (analysis.power._follow) a
    thread waiting inside the driver holding the IRP before ("inferred": true: the kernel
    records no tie between them) and the IRP it waits for -- each {"link": "irp"|"thread", ...}."""
    if c.waits_for is None:
        return None
    out = []
    if c.pending is not None:
        out.append({"link": "irp", "irp": hx(c.pending.irp.address), "request": c.pending.request,
                    "pending_at": _pending_at(c.pending)})
    for b, w, inferred in [(c.blocked, c.waits_for, False)] + [(u, x, True) for u, x in c.further]:
        f = b.facts if b is not None else None
        out.append({"link": "thread", "thread": hx(b.address) if b else None, "cid": f.thread.cid if f else None,
                    "module": f.driver if f else None, "state": f.state if f else None,
                    "wait_reason": f.wait_reason if f else None, "role": b.role if b else None,
                    "inferred": inferred})
        link = {"link": "irp"}
        link.update(waited_dict(w))
        out.append(link)
    return out


def _device_dict(dev, here):
    return {"device": hx(dev.address), "device_name": dev.name or None,
            "driver": (dev.driver.name or None) if dev.driver else None,
            "driver_object": hx(dev.driver.address) if dev.driver else None,
            "module": dev.driver.image if dev.driver else None, "pending_here": here}


def pending_dict(p, a):
    loc = p.location
    irp = p.irp
    return {
        "irp": hx(irp.address),
        "major": loc.major_name if loc else None, "minor": loc.minor_name if loc else None,
        "power_type": loc.power[0] if loc and loc.power else None,
        "power_state": loc.power[1] if loc and loc.power else None,
        "request": p.request,
        "location": location_dict(loc, irp.stack_count),
        "pending_at": _pending_at(p),
        "device_stack": [_device_dict(d, d.address == (loc.device if loc else None))
                         for d in (p.stack.devices if p.stack else [])],
        "devnode": None if p.stack is None or p.stack.devnode is None else {
            "devnode": hx(p.stack.devnode.address), "instance_path": p.stack.devnode.instance_path,
            "service": p.stack.devnode.service, "state": p.stack.devnode.state},
        "age_seconds": None if p.age is None else round(p.age, 3),
        "held_seconds": None if p.waited is None else round(p.waited, 3),
        "thread": hx(irp.thread) if irp.thread else None, "irp_state": irp.state,
        "cancel": irp.cancel, "pending_returned": irp.pending_returned,
        "expected": p.normal is not None, "note": p.normal,
        "found_in": list(p.sources),
        "power_record": None if p.pop is None else {
            "power_record": hx(p.pop.address), "pdo": hx(p.pop.pdo), "target_device": hx(p.pop.target_device),
            "current_device": hx(p.pop.current_device), "watchdog_start": p.pop.watchdog_start},
        "threads": [_role_dict(t, a) for t in p.threads],
        "more_threads": p.more_threads,
    }


def _named(thread, names):
    """{"thread", "cid", "process"} of a thread address, the names from `names(address)`
    ((cid, process) or None: the command reads them from the target)."""
    n = names(thread) if (names is not None and thread) else None
    return {"thread": hx(thread) if thread else None, "cid": n[0] if n else None, "process": n[1] if n else None}


def report_dict(r, target_name, build, names=None):
    """The powerirps document; `names(thread address)` gives (cid, process) for the threads
    named only by address (an IRP's thread, the culprit's)."""
    a = r.waits
    bc = r.bugcheck
    c = r.culprit
    doc = document(
        "powerirps", target_name, build, r.interrupted, r.diagnostics,
        bugcheck=None if bc is None else bugcheck_dict(
            bc, meaning=bc.meaning, arg_names=list(bc.arg_names) if bc.subcode is not None else None),
        culprit=None if c is None else {
            "module": c.module, "irp": hx(c.irp), "thread": hx(c.thread), "reason": c.reason,
            "pending_at": None if c.pending is None else _pending_at(c.pending),
            "blocked_thread": hx(c.blocked.address) if c.blocked else None,
            "root_blocker": hx(c.root),
            "depends_on": ([waited_dict(c.waits_for)] + [waited_dict(x) for _, x in c.further]
                           if c.waits_for is not None else []),
            "chain": _chain(c), "chain_note": c.chain_note},
        pnp_lock_holder=None if r.holder is None or a is None else _role_dict(r.holder, a),
        pending_irps=[pending_dict(p, a) for p in r.pending],
        allocated_not_at_a_driver=r.not_sent,
        completed_not_freed=r.completed,
        sources={SOURCE_KEYS.get(k, k): v for k, v in r.sources.items()})
    for p in doc["pending_irps"]:
        p.update(_named(int(p["thread"], 16) if p["thread"] else None, names))
    if doc["culprit"] is not None:
        cu = doc["culprit"]
        named = _named(int(cu["thread"], 16) if cu["thread"] else None, names)
        cu["cid"], cu["process"] = named["cid"], named["process"]
        for link in cu["chain"] or ():
            if link["link"] == "thread":
                link["process"] = _named(int(link["thread"], 16) if link["thread"] else None, names)["process"]
    return doc


def links(r):
    """{address: debugger command}: the wait-for analysis's threads and locks, then devices,
    drivers and device nodes of every pending IRP's stack, and the IRPs."""
    out = deadlock_links(r.waits) if r.waits is not None else {}
    for p in r.pending:
        if p.stack is not None:
            out.update(device_links(p.stack.devices))
        out[p.irp.address] = "!irp 0x%x" % p.irp.address
        for t in p.threads:
            out[t.address] = "!thread 0x%x" % t.address
            _waited_links(t, out)
    if r.holder is not None:
        out[r.holder.address] = "!thread 0x%x" % r.holder.address
        _waited_links(r.holder, out)
    for u, _ in (r.culprit.further if r.culprit is not None else ()):
        out[u.address] = "!thread 0x%x" % u.address
        _waited_links(u, out)
    return out


def _waited_links(role, out):
    for w in role.depends_on:
        out[w.irp.address] = "!irp 0x%x" % w.irp.address
        if w.stack is not None:
            out.update(device_links(w.stack.devices))


# -- text ------------------------------------------------------------------------------------------

def _dur(seconds):
    return format_duration(seconds) if seconds is not None else "-"


def render_text(d, out, style, header):
    w = lambda text="": out.write(text + "\n")  # noqa: E731
    s = style
    w(s("head", header))
    write_partial_headline(d, w, s)
    bc = d["bugcheck"]
    power = bc is not None and bc["code"] == "0x9f" and bc["arg_names"] is not None
    if bc is not None:
        name = " %s" % bc["name"] if bc["name"] else ""
        if power:
            w(s("bad", "BUG CHECK %s%s, subcode %s: %s" % (bc["code"], name, bc["subcode"],
                                                          bc["meaning"] or "not a documented subcode")))
            for i, (v, n) in enumerate(zip(bc["args"][1:], bc["arg_names"]), 2):
                if n is not None:
                    extra = " (%d s)" % int(v, 16) if n == "timeout in seconds" else ""
                    w("  arg%d %-18s  %s%s" % (i, v, n, extra))
        else:
            w("bug check %s%s: not a power failure; power IRPs held %d s or more are still called stuck"
              % (bc["code"], name, 60))
    c = d["culprit"]
    w()
    if c is None:
        if not power:
            before = " before the interruption" if d["interrupted"] else ""
            w("No stuck power IRP%s: nothing has been pending long enough (%d s) to blame a driver." % (before, 60)
              if d["pending_irps"] else "No pending power or PnP IRP was found%s." % before)
    else:
        w(s("bad", "CULPRIT: %s" % (s("drv", c["module"]) if c["module"] else "no driver can be named")))
        for line in wrap(c["reason"], 96):
            w("  " + line)
        who = []
        if c["irp"]:
            who.append("IRP %s" % c["irp"])
        if c["thread"]:
            who.append("thread %s" % c["thread"])
        chain = c.get("chain")
        if c["pending_at"] and c["pending_at"]["module"] and c["pending_at"]["module"] != c["module"] and not chain:
            who.append("IRP held by %s" % c["pending_at"]["module"])
        if who:
            w("  " + "   ".join(who))
        if chain:
            for i, line in enumerate(wrap(" <- ".join(_link_text(x) for x in chain), 93)):
                w(("  chain  " if i == 0 else "         ") + line)
        if c.get("chain_note"):
            for i, line in enumerate(wrap(c["chain_note"], 93)):
                w(("  note   " if i == 0 else "         ") + line)
    h = d["pnp_lock_holder"]
    if h is not None:
        w()
        w(s("head", "PnP-LOCK HOLDER"))
        _thread_lines(h, w, s, "  ")
    w()
    rows = []
    for p in d["pending_irps"]:
        at = p["pending_at"]
        rows.append([p["irp"], p["request"],
                     (at["driver"] or at["device"]) if at else "not at a driver",
                     "%s%s" % (at["device"], " (%s)" % at["device_name"] if at["device_name"] else "") if at else "",
                     _dur(p["held_seconds"]), "expected" if p["expected"] else "",
                     ", ".join(p["found_in"])])
    w(s("head", "PENDING POWER/PnP IRPs (%d)" % len(rows)))
    if rows:
        for line in tabulate(rows, headers=["IRP", "request", "pending at", "device", "held", "note",
                                            "found in"], tablefmt="simple", disable_numparse=True).splitlines():
            w("  " + line)
    if d["allocated_not_at_a_driver"]:
        w("  %d more power IRP%s allocated but not yet sent to any driver (CurrentLocation = StackCount + 1)" % (
            d["allocated_not_at_a_driver"], "" if d["allocated_not_at_a_driver"] == 1 else "s"))
    if d.get("completed_not_freed"):
        w("  %d more power IRP%s completed, not yet freed (CurrentLocation = StackCount + 2)" % (
            d["completed_not_freed"], "" if d["completed_not_freed"] == 1 else "s"))
    for p in d["pending_irps"]:
        if p["expected"]:
            continue
        w()
        w(s("head", "IRP %s  %s" % (p["irp"], p["request"])))
        loc = p["location"]
        if loc is not None:
            at = p["pending_at"]
            w("  pending at %s, device %s%s, stack location current %d of %d" % (
                at["driver"] or "?", at["device"], " (%s)" % at["device_name"] if at["device_name"] else "",
                loc["number"], loc["of"]))
        if p["age_seconds"] is not None:
            w("  power watchdog armed %s ago" % _dur(p["age_seconds"]))
        if p["device_stack"]:
            # the driver object's address is printed so that, inside WinDbg, it links to !drvobj
            rows = [[">" if x["pending_here"] else "", x["device"], x["driver"] or "?", x["driver_object"] or "-",
                     x["device_name"], x["module"] or ""] for x in p["device_stack"]]
            for line in tabulate(rows, headers=["at", "device", "driver", "driver object", "name", "module"],
                                 tablefmt="simple", disable_numparse=True).splitlines():
                w("    " + line)
        n = p["devnode"]
        if n is not None:
            w("  device node %s  %s  %s  service %s" % (n["devnode"], n["state"], n["instance_path"] or "?",
                                                          n["service"] or "?"))
        for t in p["threads"]:
            _thread_lines(t, w, s, "  ")
        if p.get("more_threads"):
            w("  ... and %d more threads in the wait-for graph waiting inside %s (see deadlock)"
              % (p["more_threads"], (p["pending_at"] or {}).get("module") or "its driver"))
        if not p["threads"]:
            w("  no thread found working on it")
    sources = ", ".join("%s: %s" % (SOURCE_LABELS.get(k, k), v) for k, v in d["sources"].items())
    w()
    w(s("dim", "searched %s" % sources))
    if d["warnings"]:
        w(s("warn", "WARNINGS (%d): results may be partial" % len(d["warnings"])))
        for x in d["warnings"]:
            w("  - %s" % x["message"])


def _link_text(x):
    if x["link"] == "thread":
        return "thread %s (%s%s)" % (x["thread"], (x["state"] or "?").lower(),
                                     " in %s" % x["module"] if x["module"] else "")
    at = x["pending_at"] or {}
    text = "IRP %s (%s) pending at %s" % (x["irp"], x["request"], at.get("module") or at.get("driver") or "?")
    if x.get("location"):
        text += ", current location %d of %d" % (x["location"]["number"], x["location"]["of"])
    return text


def _waited_lines(t, w, s, ind):
    for x in t.get("depends_on") or []:
        at = x["pending_at"] or {}
        w("%s  waits for IRP %s (%s) pending at %s, device %s%s, current location %d of %d" % (
            ind, x["irp"], x["request"], s("drv", at.get("driver") or "?"), at.get("device"),
            " (%s)" % at["device_name"] if at.get("device_name") else "", x["location"]["number"],
            x["location"]["of"]))
        for line in wrap("; ".join(x["evidence"]), 90):
            w("%s    %s" % (ind, line))


def _thread_lines(t, w, s, ind):
    head = "thread %s" % s("addr", t["thread"])
    if t.get("cid"):
        head += "  Cid %s  %s" % (t["cid"], t.get("process") or "?")
    w("%s%s -- %s" % (ind, head, t["role"]))
    if t.get("state") is None:
        w("%s  not in any process's thread list" % ind)
        return
    state = t["state"] + ("/%s" % t["wait_reason"] if t["state"] == "Waiting" else "")
    waited = " for %s" % _dur(t["wait_seconds"]) if t.get("wait_seconds") is not None else ""
    objs = ", ".join("%s %s" % (o["type"], o["object"]) for o in t.get("waits_on_objects") or [])
    w("%s  %s%s%s" % (ind, state, waited, (" on " + objs) if objs else ""))
    if t.get("holds"):
        w("%s  holds  %s" % (ind, ", ".join("%s %s%s %s" % (kind_label(h["lock_kind"]) or "lock", h["lock"],
                                                              " (%s)" % h["lock_name"] if h["lock_name"] else "",
                                                              h["mode"]) for h in t["holds"])))
    if t.get("module"):
        w("%s  driver %s" % (ind, s("drv", t["module"])))
    frames = [f for f in t.get("stack") or [] if f.split("+")[0].lower() not in SCHEDULER]
    if frames:
        w("%s  stack  %s" % (ind, frames[0]))
        for f in frames[1:8]:
            w("%s         %s" % (ind, f))
        if len(frames) > 8:
            w("%s         ... %d more" % (ind, len(frames) - 8))
    _waited_lines(t, w, s, ind)
    ch = t.get("wait_chain")
    if ch and "root" in ch:
        for e in ch["edges"]:
            name = " (%s)" % e["lock_name"] if e["lock_name"] else ""
            w("%s  waits for %s %s%s %s, held by thread %s" % (ind, kind_label(e["lock_kind"]) or "lock", e["lock"], name,
                                                             e["mode"], e["held_by"] or "?"))
        w("%s  root blocker %s: %s%s" % (ind, ch["root"], s("bad", ch["reason"]),
                                         (" in " + s("drv", ch["root_module"])) if ch.get("root_module") else ""))
    elif ch and "cycle" in ch:
        w("%s  %s" % (ind, s("bad", "in a deadlock cycle: %s" % " -> ".join(ch["cycle"]))))

