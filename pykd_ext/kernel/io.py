"""I/O manager views: IRPs with their stack locations, device objects, device stacks and
device nodes, and the names a debugger user reads them by.

Facts used (WDK wdm.h, and the layouts):
- an IRP is followed by its StackCount `_IO_STACK_LOCATION`s; `CurrentLocation` counts from 1
  and is StackCount + 1 before the IRP reaches any driver (IoInitializeIrp); IoCallDriver
  decrements it, so the current location is the one the IRP is pending at, and
  `Tail.Overlay.CurrentStackLocation` points at it (WRK/ReactOS IofCallDriver);
- completion walks it back up: IofCompleteRequest increments CurrentLocation and
  CurrentStackLocation once per location until CurrentLocation > StackCount + 1, so a
  completed IRP has CurrentLocation == StackCount + 2 (WRK IopfCompleteRequest, ReactOS
  ntoskrnl/io/iomgr/irp.c IofCompleteRequest; ReactOS IopDisassociateThreadIrp tests exactly
  that for "already completed"); it is a completed IRP, not a corrupt one;
- an IRP's `UserEvent` is the event its issuer waits on for a synchronous request, signalled by
  IopCompleteRequest; `RequestorMode` is KernelMode (0) for IRPs the IoBuild routines make
  (IoAllocateIrp zeroes the packet) and PreviousMode for the system services' own
  (ReactOS irp.c IoBuildDeviceIoControlRequest, IopCompleteRequest; iofunc.c
  IopDeviceFsIoControl); `Parameters.DeviceIoControl.IoControlCode` is a device control's IOCTL;
- a device stack links upward through `DEVICE_OBJECT.AttachedDevice` and downward through
  `DEVOBJ_EXTENSION.AttachedTo`; the bottom device (the PDO) has the device node;
- an object's name is in `_OBJECT_HEADER_NAME_INFO`, below its `_OBJECT_HEADER` (InfoMask
  bit 0x02), displaced only by the creator info (bit 0x01).
"""
from ..errors import FieldNotFound, MemoryFault, TypeNotFound
from .devices import IO_TYPE_DEVICE, IO_TYPE_DRIVER, read_driver, read_unicode_string
from .diag import Diagnostics
from .views import Struct

IO_TYPE_IRP = 6
MAX_STACK = 64               # StackCount is a CCHAR; real stacks are a handful deep
MAX_DEVICE_STACK = 32

IRP_MJ = ["IRP_MJ_CREATE", "IRP_MJ_CREATE_NAMED_PIPE", "IRP_MJ_CLOSE", "IRP_MJ_READ",
          "IRP_MJ_WRITE", "IRP_MJ_QUERY_INFORMATION", "IRP_MJ_SET_INFORMATION", "IRP_MJ_QUERY_EA",
          "IRP_MJ_SET_EA", "IRP_MJ_FLUSH_BUFFERS", "IRP_MJ_QUERY_VOLUME_INFORMATION",
          "IRP_MJ_SET_VOLUME_INFORMATION", "IRP_MJ_DIRECTORY_CONTROL", "IRP_MJ_FILE_SYSTEM_CONTROL",
          "IRP_MJ_DEVICE_CONTROL", "IRP_MJ_INTERNAL_DEVICE_CONTROL", "IRP_MJ_SHUTDOWN",
          "IRP_MJ_LOCK_CONTROL", "IRP_MJ_CLEANUP", "IRP_MJ_CREATE_MAILSLOT", "IRP_MJ_QUERY_SECURITY",
          "IRP_MJ_SET_SECURITY", "IRP_MJ_POWER", "IRP_MJ_SYSTEM_CONTROL", "IRP_MJ_DEVICE_CHANGE",
          "IRP_MJ_QUERY_QUOTA", "IRP_MJ_SET_QUOTA", "IRP_MJ_PNP"]
IRP_MJ_POWER, IRP_MJ_PNP = 0x16, 0x1b
IRP_MJ_DEVICE_CONTROL, IRP_MJ_INTERNAL_DEVICE_CONTROL = 0x0e, 0x0f

IRP_MN_POWER = {0x00: "IRP_MN_WAIT_WAKE", 0x01: "IRP_MN_POWER_SEQUENCE",
                0x02: "IRP_MN_SET_POWER", 0x03: "IRP_MN_QUERY_POWER"}
IRP_MN_PNP = {
    0x00: "IRP_MN_START_DEVICE", 0x01: "IRP_MN_QUERY_REMOVE_DEVICE", 0x02: "IRP_MN_REMOVE_DEVICE",
    0x03: "IRP_MN_CANCEL_REMOVE_DEVICE", 0x04: "IRP_MN_STOP_DEVICE", 0x05: "IRP_MN_QUERY_STOP_DEVICE",
    0x06: "IRP_MN_CANCEL_STOP_DEVICE", 0x07: "IRP_MN_QUERY_DEVICE_RELATIONS",
    0x08: "IRP_MN_QUERY_INTERFACE", 0x09: "IRP_MN_QUERY_CAPABILITIES", 0x0a: "IRP_MN_QUERY_RESOURCES",
    0x0b: "IRP_MN_QUERY_RESOURCE_REQUIREMENTS", 0x0c: "IRP_MN_QUERY_DEVICE_TEXT",
    0x0d: "IRP_MN_FILTER_RESOURCE_REQUIREMENTS", 0x0f: "IRP_MN_READ_CONFIG",
    0x10: "IRP_MN_WRITE_CONFIG", 0x11: "IRP_MN_EJECT", 0x12: "IRP_MN_SET_LOCK",
    0x13: "IRP_MN_QUERY_ID", 0x14: "IRP_MN_QUERY_PNP_DEVICE_STATE", 0x15: "IRP_MN_QUERY_BUS_INFORMATION",
    0x16: "IRP_MN_DEVICE_USAGE_NOTIFICATION", 0x17: "IRP_MN_SURPRISE_REMOVAL",
    0x19: "IRP_MN_DEVICE_ENUMERATED"}

# _SYSTEM_POWER_STATE / _DEVICE_POWER_STATE constants -> the names people use
SHORT_POWER = {"PowerSystemWorking": "S0", "PowerSystemSleeping1": "S1", "PowerSystemSleeping2": "S2",
               "PowerSystemSleeping3": "S3", "PowerSystemHibernate": "S4", "PowerSystemShutdown": "S5",
               "PowerDeviceD0": "D0", "PowerDeviceD1": "D1", "PowerDeviceD2": "D2", "PowerDeviceD3": "D3"}

SL_PENDING_RETURNED = 0x01
SL_INVOKE_ON_CANCEL, SL_INVOKE_ON_SUCCESS, SL_INVOKE_ON_ERROR = 0x20, 0x40, 0x80


def major_name(major):
    return IRP_MJ[major] if 0 <= major < len(IRP_MJ) else "IRP_MJ_0x%x" % major


def minor_name(major, minor):
    table = IRP_MN_POWER if major == IRP_MJ_POWER else IRP_MN_PNP if major == IRP_MJ_PNP else None
    if table is None:
        return "0x%x" % minor
    return table.get(minor, "0x%x" % minor)


def power_state_name(layouts, ptype, state):
    """('SystemPowerState', 'S4') / ('DevicePowerState', 'D3') from the enums' own names."""
    tname = layouts.enum_names("_POWER_STATE_TYPE").get(ptype, "PowerStateType%d" % ptype)
    enum = "_SYSTEM_POWER_STATE" if tname == "SystemPowerState" else "_DEVICE_POWER_STATE"
    sname = layouts.enum_names(enum).get(state, "%d" % state)
    return tname, SHORT_POWER.get(sname, sname)


# -- objects ---------------------------------------------------------------------------------------

def object_name(target, body):
    """The object manager name of the object whose body is at `body` ('' if none/unreadable)."""
    lays = target.layouts()
    try:
        hdr_lay = lays.layout("_OBJECT_HEADER")
        header = body - hdr_lay.offset("Body")
        mask = Struct(target, hdr_lay, header)["InfoMask"]
        if not mask & 0x02:
            return ""
        below = lays.layout("_OBJECT_HEADER_NAME_INFO").size
        if mask & 0x01:
            below += lays.layout("_OBJECT_HEADER_CREATOR_INFO").size
        info = header - below
        return read_unicode_string(target, info + lays.layout("_OBJECT_HEADER_NAME_INFO").offset("Name"))
    except (MemoryFault, TypeNotFound, FieldNotFound):
        return ""


class Driver(object):
    __slots__ = ("address", "name", "module", "image")

    def __init__(self, address, name="", module=None):
        self.address, self.name, self.module = address, name, module
        self.image = module.image if module is not None else (
            name.rsplit("\\", 1)[-1] + ".sys" if name else "")


def decode_driver(target, address, diags):
    if not address:
        return None
    try:
        typ, name, start = read_driver(target, address)
        if typ != IO_TYPE_DRIVER:
            diags.add("bad-object", "0x%x is not a driver object (Type %d)" % (address, typ), address)
            return Driver(address)
        return Driver(address, name, target.module_at(start) if start else None)
    except MemoryFault as e:
        diags.add("unreadable", "driver object 0x%x is unreadable" % address, e.address)
        return Driver(address)


class Device(object):
    __slots__ = ("address", "driver", "extension", "name", "attached_device", "attached_to",
                 "devnode", "current_irp", "stack_size", "readable")

    def __init__(self, address):
        self.address = address
        self.driver = None
        self.extension = self.attached_device = self.attached_to = self.devnode = 0
        self.current_irp = 0
        self.name = ""
        self.stack_size = 0
        self.readable = False


def decode_device(target, address, diags):
    dev = Device(address)
    try:
        d = Struct(target, "_DEVICE_OBJECT", address)
        if d["Type"] != IO_TYPE_DEVICE:
            diags.add("bad-object", "0x%x is not a device object (Type %d)" % (address, d["Type"]), address)
            return dev
        dev.readable = True
        dev.extension = d["DeviceExtension"]
        dev.attached_device = d["AttachedDevice"]
        dev.current_irp = d["CurrentIrp"]
        dev.stack_size = d["StackSize"]
        dev.driver = decode_driver(target, d["DriverObject"], diags)
        ext = d["DeviceObjectExtension"]
        if ext:
            x = Struct(target, "_DEVOBJ_EXTENSION", ext)
            dev.attached_to = x["AttachedTo"]
            dev.devnode = x["DeviceNode"]
    except MemoryFault as e:
        diags.add("unreadable", "device object 0x%x is unreadable (0x%x)" % (address, e.address), e.address)
    dev.name = object_name(target, address)
    return dev


class DevNode(object):
    __slots__ = ("address", "instance_path", "service", "state", "pdo")

    def __init__(self, address):
        self.address = address
        self.instance_path = self.service = self.state = ""
        self.pdo = 0


def decode_devnode(target, address, diags):
    n = DevNode(address)
    try:
        d = Struct(target, "_DEVICE_NODE", address)
        n.pdo = d["PhysicalDeviceObject"]
        # _PNP_DEVNODE_STATE starts at DeviceNodeUnspecified (0x300): another value is not a state
        n.state = target.layouts().enum_names("_PNP_DEVNODE_STATE").get(
            d["State"], "not a devnode state (0x%x)" % d["State"])
        n.instance_path = read_unicode_string(target, d.address_of("InstancePath"))
        n.service = read_unicode_string(target, d.address_of("ServiceName"))
    except MemoryFault as e:
        diags.add("unreadable", "device node 0x%x is unreadable (0x%x)" % (address, e.address), e.address)
    return n


class DeviceStack(object):
    """devices top to bottom; `index` of the device asked for; the bottom device's node."""

    def __init__(self):
        self.devices = []
        self.index = 0
        self.devnode = None
        self.diagnostics = Diagnostics()
        self.complete = True


def _follow(target, start, link, where, seen, st):
    """Devices reached from `start` through `link` (attached_device: up, attached_to: down),
    nearest first; a loop, a cap or an unreadable device cuts the walk and says so."""
    out, cur = [], start
    while getattr(cur, link):
        a = getattr(cur, link)
        if a in seen or len(out) >= MAX_DEVICE_STACK:
            st.diagnostics.add("loop", "device stack %s 0x%x loops or is deeper than %d" % (
                where, start.address, MAX_DEVICE_STACK), a)
            st.complete = False
            break
        seen.add(a)
        cur = decode_device(target, a, st.diagnostics)
        out.append(cur)
        if not cur.readable:
            st.complete = False
            break
    return out


def device_stack(target, address):
    st = DeviceStack()
    diags = st.diagnostics
    start = decode_device(target, address, diags)
    if not start.readable:
        st.devices, st.complete = [start], False
        return st
    seen = {address}
    up = _follow(target, start, "attached_device", "above", seen, st)    # nearest first
    down = _follow(target, start, "attached_to", "below", seen, st)
    st.devices = list(reversed(up)) + [start] + down
    st.index = len(up)
    bottom = st.devices[-1]
    if bottom.devnode:
        st.devnode = decode_devnode(target, bottom.devnode, diags)
    return st


# -- IRPs ------------------------------------------------------------------------------------------

class Location(object):
    __slots__ = ("index", "address", "major", "minor", "flags", "control", "device", "file",
                 "completion", "context", "power", "args", "ioctl", "readable")

    def __init__(self, index, address):
        self.index, self.address = index, address
        self.major = self.minor = self.flags = self.control = 0
        self.device = self.file = self.completion = self.context = 0
        self.power = None          # (type name, state name) for IRP_MJ_POWER set/query
        self.args = ()
        self.ioctl = None          # Parameters.DeviceIoControl.IoControlCode of a (internal) device control
        self.readable = False

    @property
    def number(self):
        """The location's number as WinDbg's !irp counts them (1-based)."""
        return self.index + 1

    @property
    def major_name(self):
        return major_name(self.major)

    @property
    def minor_name(self):
        return minor_name(self.major, self.minor)

    @property
    def pending(self):
        return bool(self.control & SL_PENDING_RETURNED)


PENDING, NOT_SENT, COMPLETED, BAD = "pending", "not yet sent", "completed", "bad"


class Irp(object):
    __slots__ = ("address", "readable", "stack_count", "current_location", "current", "thread",
                 "cancel", "pending_returned", "flags", "status", "locations", "diagnostics", "state",
                 "user_event", "requestor_mode")

    def __init__(self, address):
        self.address = address
        self.readable = False
        self.stack_count = self.current_location = 0
        self.current = None        # index into locations of the current one, or None
        self.thread = 0
        self.cancel = self.pending_returned = False
        self.flags = self.status = 0
        self.locations = []
        self.diagnostics = Diagnostics()
        self.state = None          # PENDING (at a driver), NOT_SENT, COMPLETED or BAD; None: unread
        self.user_event = None     # UserEvent (None where the layout lacks it)
        self.requestor_mode = None # RequestorMode: 0 KernelMode, 1 UserMode (None where the layout lacks it)

    @property
    def current_loc(self):
        return self.locations[self.current] if self.current is not None else None


def decode_irp(target, address):
    irp = Irp(address)
    diags = irp.diagnostics
    lays = target.layouts()
    try:
        s = Struct(target, "_IRP", address)
        if s["Type"] != IO_TYPE_IRP:
            diags.add("bad-object", "0x%x is not an IRP (Type %d, an IRP's is %d)" % (
                address, s["Type"], IO_TYPE_IRP), address)
            return irp
        irp.stack_count = s["StackCount"] & 0xff
        irp.current_location = s["CurrentLocation"]
        irp.thread = s["Tail.Overlay.Thread"]
        irp.cancel = bool(s["Cancel"])
        irp.pending_returned = bool(s["PendingReturned"])
        irp.flags = s["Flags"]
        irp.status = s.sub("IoStatus")["Status"] & 0xffffffff
        irp.user_event = s.get("UserEvent")
        irp.requestor_mode = s.get("RequestorMode")
        current_sl = s["Tail.Overlay.CurrentStackLocation"]
        irp.readable = True
    except MemoryFault as e:
        diags.add("unreadable", "IRP 0x%x is unreadable (0x%x)" % (address, e.address), e.address)
        return irp
    if not 0 < irp.stack_count <= MAX_STACK:
        diags.add("bad-object", "IRP 0x%x has StackCount %d" % (address, irp.stack_count), address)
        return irp
    sl_lay = lays.layout("_IO_STACK_LOCATION")
    first = address + lays.layout("_IRP").size
    raw = None                       # None: decode one by one (the readable ones still show)
    if target.whole_structures:
        try:
            raw = target.read(first, irp.stack_count * sl_lay.size)
        except MemoryFault:
            pass
    for i in range(irp.stack_count):
        a = first + i * sl_lay.size
        loc = Location(i, a)
        try:
            v = Struct(target, sl_lay, a, raw=raw[i * sl_lay.size:(i + 1) * sl_lay.size] if raw else None)
            loc.major, loc.minor = v["MajorFunction"], v["MinorFunction"]
            loc.flags, loc.control = v["Flags"], v["Control"]
            loc.device, loc.file = v["DeviceObject"], v["FileObject"]
            loc.completion, loc.context = v["CompletionRoutine"], v["Context"]
            loc.args = tuple(v["Parameters.Others.Argument%d" % k] for k in range(1, 5))
            if loc.major == IRP_MJ_POWER and loc.minor in (0x02, 0x03):
                state = int.from_bytes(v.raw("Parameters.Power.State")[:4], "little")  # a union of two enums
                loc.power = power_state_name(lays, v["Parameters.Power.Type"], state)
            if loc.major in (IRP_MJ_DEVICE_CONTROL, IRP_MJ_INTERNAL_DEVICE_CONTROL):
                loc.ioctl = v.get("Parameters.DeviceIoControl.IoControlCode")
            loc.readable = True
        except MemoryFault as e:
            diags.add("unreadable", "IRP 0x%x stack location %d is unreadable" % (address, i), e.address)
        irp.locations.append(loc)
    cur = irp.current_location
    if 1 <= cur <= irp.stack_count:
        irp.current, irp.state = cur - 1, PENDING
    elif cur == irp.stack_count + 1:
        irp.state = NOT_SENT             # IoInitializeIrp: no IoCallDriver yet
    elif cur == irp.stack_count + 2:
        irp.state = COMPLETED            # IofCompleteRequest walked every location
    else:
        irp.state = BAD
        diags.add("bad-object", "IRP 0x%x: CurrentLocation %d outside 1..%d (StackCount + 2 is a completed "
                  "IRP)" % (address, cur, irp.stack_count + 2), address)
    # CurrentStackLocation moves with CurrentLocation in IofCallDriver and IofCompleteRequest
    if irp.state != BAD and current_sl and current_sl != first + (cur - 1) * sl_lay.size:
        diags.add("inconsistent", "IRP 0x%x: CurrentLocation %d but CurrentStackLocation 0x%x" % (
            address, cur, current_sl), address)
    return irp
