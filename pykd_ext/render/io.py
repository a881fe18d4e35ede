"""Renderers of IRPs and device stacks: text for people (DML inside WinDbg), JSON for programs."""
import json

from tabulate import tabulate

from .doc import document, hx, write_partial_headline


def driver_label(drv):
    if drv is None:
        return ""
    return drv.name or "driver 0x%x" % drv.address


def device_ref(address, dev=None, driver=None, module=None):
    """A device in the JSON vocabulary, the one shape everywhere: {"device", "device_name",
    "driver" (the driver object's name), "driver_object", "module" (its image)}."""
    drv = driver if driver is not None else (dev.driver if dev is not None else None)
    return {"device": hx(address), "device_name": (dev.name or None) if dev is not None else None,
            "driver": (drv.name or None) if drv is not None else None,     # a name, or null
            "driver_object": hx(drv.address) if drv is not None else None,
            "module": module if module is not None else (drv.image if drv is not None else None)}


def device_links(stack_devices, extra=()):
    """{address: debugger command} for devices, drivers and device nodes."""
    out = {}
    for d in stack_devices:
        out[d.address] = "!devstack 0x%x" % d.address
        if d.driver is not None:
            out[d.driver.address] = "!drvobj 0x%x 3" % d.driver.address
        if d.devnode:
            out[d.devnode] = "!devnode 0x%x" % d.devnode
        if d.extension:
            out.setdefault(d.extension, "dq 0x%x" % d.extension)
    out.update(extra)
    return out


def location_dict(loc, stack_count):
    """An IRP stack location as WinDbg numbers it: 1-based, "current N of M" (!irp); `loc.index`
    is its 0-based index in the IRP's array (CurrentLocation - 1, kernel/io.decode_irp)."""
    return None if loc is None else {"number": loc.index + 1, "of": stack_count, "address": hx(loc.address)}


# -- devstack --------------------------------------------------------------------------------------

def devstack_dict(st, target_name=None, build=None):
    doc = document(
        "devstack", target_name, build, None, st.diagnostics,
        devices=[{"device": hx(d.address), "device_name": d.name or None,
                  "driver": (d.driver.name or None) if d.driver else None,
                  "driver_object": hx(d.driver.address) if d.driver else None,
                  "module": d.driver.image if d.driver else None,
                  "extension": hx(d.extension), "this": i == st.index}
                 for i, d in enumerate(st.devices)],
        devnode=None if st.devnode is None else {
            "devnode": hx(st.devnode.address), "instance_path": st.devnode.instance_path,
            "service": st.devnode.service, "state": st.devnode.state, "pdo": hx(st.devnode.pdo)})
    if not st.complete:                  # a stack walk cut short (kernel/io.device_stack)
        doc["complete"] = False
    return doc


def render_devstack_text(st, out, style, header, doc=None):
    w = out.write
    w(style("head", header) + "\n")
    if doc is not None:
        write_partial_headline(doc, lambda text: w(text + "\n"), style)
    rows = []
    for i, d in enumerate(st.devices):
        rows.append([">" if i == st.index else "", "0x%x" % d.address, driver_label(d.driver),
                     "0x%x" % d.driver.address if d.driver else "-",
                     "0x%x" % d.extension if d.extension else "-", d.name or "",
                     d.driver.image if d.driver else ""])
    # the driver object's address is printed so that, inside WinDbg, it links to !drvobj
    for line in tabulate(rows, headers=["asked", "device", "driver", "driver object", "extension", "name",
                                        "module"],
                         tablefmt="simple", disable_numparse=True).splitlines():
        w("  " + line + "\n")
    n = st.devnode
    if n is not None:
        w("device node 0x%x  %s\n" % (n.address, n.state))
        w("  instance path  %s\n" % (n.instance_path or "?"))
        w("  service        %s\n" % (n.service or "?"))
    elif st.devices and st.devices[-1].readable:
        w("no device node (the bottom device is not a PnP physical device object)\n")
    _warnings(st.diagnostics, out, style)


# -- irp -------------------------------------------------------------------------------------------

def irp_dict(irp, devices, thread, describe, target_name=None, build=None):
    locs = []
    for loc in irp.locations:
        dev = devices.get(loc.device)
        d = {"number": loc.index + 1, "address": hx(loc.address), "current": loc.index == irp.current,
             "major": loc.major_name, "minor": loc.minor_name, "major_code": loc.major, "minor_code": loc.minor,
             "power_type": loc.power[0] if loc.power else None,
             "power_state": loc.power[1] if loc.power else None,
             "control": loc.control, "pending": loc.pending, "flags": loc.flags}
        d.update(device_ref(loc.device, dev))
        locs.append(d)
        d.update({
            "completion": hx(loc.completion),
            "completion_symbol": describe(loc.completion) if loc.completion else None,
            "context": hx(loc.context), "args": [hx(a) for a in loc.args], "readable": loc.readable})
    cur = irp.current_loc
    dev = devices.get(cur.device) if cur else None
    return document(
        "irp", target_name, build, None, irp.diagnostics,
        irp=hx(irp.address), stack_count=irp.stack_count,
        current_location=irp.current_location, location=location_dict(cur, irp.stack_count), irp_state=irp.state,
        thread=hx(irp.thread) if irp.thread else None, cid=thread[0] if thread else None,
        process=thread[1] if thread else None,
        cancel=irp.cancel, pending_returned=irp.pending_returned, flags=irp.flags,
        status=irp.status,
        pending_at=None if cur is None else device_ref(cur.device, dev),
        locations=locs)


def render_irp_text(d, out, style, header):
    w = out.write
    w(style("head", header) + "\n")
    write_partial_headline(d, lambda text: w(text + "\n"), style)
    cur = d["location"]
    state = d.get("irp_state")
    if cur is not None:
        where = "current %d (0x%s)" % (cur["number"], cur["address"][2:])
    elif state == "completed":
        where = "completed (CurrentLocation %d = StackCount + 2: IoCompleteRequest walked every location)" % (
            d["current_location"])
    elif state == "not yet sent":
        where = "not yet sent to any driver (CurrentLocation %d = StackCount + 1)" % d["current_location"]
    else:
        where = "at no valid stack location (CurrentLocation %d)" % d["current_location"]
    w("IRP %s  %d stack location%s, %s\n" % (d["irp"], d["stack_count"], "s" if d["stack_count"] != 1 else "",
                                              where))
    if d["thread"]:
        who = "  Cid %s  %s" % (d["cid"], d["process"]) if d["cid"] else ""
        w("  thread      %s%s\n" % (d["thread"], who))
    w("  flags       0x%x   pending returned: %s   cancel: %s   status 0x%x\n" % (
        d["flags"], "yes" if d["pending_returned"] else "no", "yes" if d["cancel"] else "no", d["status"]))
    rows, unused = [], []
    for loc in d["locations"]:
        empty = (loc["readable"] and not loc["major_code"] and not loc["minor_code"] and loc["device"] == "0x0"
                 and loc["completion"] == "0x0")
        if empty and not loc["current"]:
            unused.append(loc["number"])
            continue
        fn = "%s / %s" % (loc["major"], loc["minor"]) if loc["readable"] else "unreadable"
        if loc["power_type"]:
            fn += "  %s %s" % (loc["power_type"], loc["power_state"])
        other = loc["control"] & ~0x01
        flags = ("pending " if loc["pending"] else "") + ("0x%02x" % other if other else "")
        rows.append([">" if loc["current"] else "", loc["number"], fn,
                     loc["device"] if loc["device"] != "0x0" else "-",
                     loc["driver"] or "", loc["device_name"] or "",
                     loc["completion_symbol"] or "-", flags.strip()])
    if unused:
        w("  locations %s unused\n" % _ranges(unused))
    for line in tabulate(rows, headers=["cur", "#", "major / minor", "device", "driver", "name",
                                        "completion", "control"], tablefmt="simple", disable_numparse=True).splitlines():
        w("  " + line + "\n")
    p = d["pending_at"]
    if p is not None:
        w(style("bad", "pending at %s%s, device %s%s" % (
            p["driver"] or "an unknown driver", " (%s)" % p["module"] if p["module"] else "",
            p["device"], " (%s)" % p["device_name"] if p["device_name"] else "")) + "\n")
    _warnings_list(d["warnings"], out, style)


def _ranges(idx):
    out, start = [], idx[0]
    for a, b in zip(idx, idx[1:] + [None]):
        if b != a + 1:
            out.append("%d" % start if start == a else "%d-%d" % (start, a))
            start = b
    return ", ".join(out)


def _warnings(diags, out, style):
    _warnings_list([d.as_dict() for d in diags], out, style)


def _warnings_list(warnings, out, style):
    if warnings:
        out.write(style("warn", "WARNINGS (%d): results may be partial" % len(warnings)) + "\n")
        for d in warnings:
            out.write("  - %s\n" % d["message"])


def render_json(doc, out):
    json.dump(doc, out, indent=2)
    out.write("\n")
