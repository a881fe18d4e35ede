"""I/O: driver and device objects, device stacks and nodes, IRPs, the power manager's IRP list."""
from .memory import TICK_100NS


class IoMixin(object):
    # -- I/O objects -------------------------------------------------------------------------

    def unicode_string(self, address, text):
        data = text.encode("utf-16-le")
        buf = self.alloc(len(data) + 2)
        self.mem.write(buf, data)
        self.put("_UNICODE_STRING", address, Length=len(data), MaximumLength=len(data) + 2, Buffer=buf)

    def driver_object(self, name, module=None):
        """A DRIVER_OBJECT named `\\Driver\\X` (its image the module of the same name)."""
        a = self.alloc(self.size("_DRIVER_OBJECT"))
        self.put("_DRIVER_OBJECT", a, Type=4, Size=self.size("_DRIVER_OBJECT"))
        self.unicode_string(a + self.off("_DRIVER_OBJECT", "DriverName"), name)
        m = self.modules.get(module or name.rsplit("\\", 1)[-1])
        if m is not None:
            self.put("_DRIVER_OBJECT", a, DriverStart=m.base, DriverSize=m.size)
        return a

    def device_object(self, driver, extension_size=0, name=None):
        """A DEVICE_OBJECT of `driver` with its extension right behind it, as IoCreateDevice
        lays them out; returns (device, extension).  A named device also gets its object
        header with the name info below it (InfoMask 0x02)."""
        size = self.size("_DEVICE_OBJECT")
        if name is not None:
            ni, hdr = self.size("_OBJECT_HEADER_NAME_INFO"), self.off("_OBJECT_HEADER", "Body")
            block = self.alloc(ni + hdr + size + extension_size)
            self.unicode_string(block + self.off("_OBJECT_HEADER_NAME_INFO", "Name"), name)
            self.put("_OBJECT_HEADER", block + ni, InfoMask=0x02, PointerCount=1)
            a = block + ni + hdr
        else:
            a = self.alloc(size + extension_size)
        first = int.from_bytes(self.mem.read(driver + self.off("_DRIVER_OBJECT", "DeviceObject"), 8), "little")
        self.put("_DEVICE_OBJECT", a, Type=3, Size=size + extension_size, DriverObject=driver,
                 DeviceExtension=a + size if extension_size else 0, NextDevice=first, ReferenceCount=1,
                 StackSize=1)
        self.put("_DRIVER_OBJECT", driver, DeviceObject=a)
        return a, (a + size if extension_size else 0)

    def _devobj_extension(self, device):
        ext = int.from_bytes(self.mem.read(device + self.off("_DEVICE_OBJECT", "DeviceObjectExtension"), 8),
                             "little")
        if not ext:
            ext = self.alloc(self.size("_DEVOBJ_EXTENSION"))
            self.put("_DEVOBJ_EXTENSION", ext, Type=0xd, Size=self.size("_DEVOBJ_EXTENSION"), DeviceObject=device)
            self.put("_DEVICE_OBJECT", device, DeviceObjectExtension=ext)
        return ext

    def attach(self, upper, lower):
        """IoAttachDeviceToDeviceStack: `upper` on top of `lower`."""
        self.put("_DEVICE_OBJECT", lower, AttachedDevice=upper)
        self.put("_DEVOBJ_EXTENSION", self._devobj_extension(upper), AttachedTo=lower)
        below = int.from_bytes(self.mem.read(lower + self.off("_DEVICE_OBJECT", "StackSize"), 1), "little")
        self.put("_DEVICE_OBJECT", upper, StackSize=below + 1)

    def device_stack(self, drivers):
        """Devices of `drivers` (top first: [(driver, name or None, extension size)]) attached
        into one stack; returns the device addresses, top first."""
        devs = [self.device_object(drv, ext, name)[0] for drv, name, ext in drivers]
        for upper, lower in zip(devs[:-1][::-1], devs[1:][::-1]):
            self.attach(upper, lower)
        return devs

    def _new_devnode(self, pdo, instance_path, service, state="DeviceNodeStarted"):
        n = self.alloc(self.size("_DEVICE_NODE"))
        self.put("_DEVICE_NODE", n, PhysicalDeviceObject=pdo, State=self.enum("_PNP_DEVNODE_STATE", state))
        self.unicode_string(n + self.off("_DEVICE_NODE", "InstancePath"), instance_path)
        self.unicode_string(n + self.off("_DEVICE_NODE", "ServiceName"), service)
        self.put("_DEVOBJ_EXTENSION", self._devobj_extension(pdo), DeviceNode=n)
        return n

    def devnode(self, pdo, instance_path, service, state="DeviceNodeStarted", parent=None):
        """The device node of `pdo`, the last child of `parent` (default: the tree's root)."""
        n = self._new_devnode(pdo, instance_path, service, state)
        parent = parent or self.root_devnode
        last = self._u64(parent + self.off("_DEVICE_NODE", "LastChild"))
        if last:
            self.put("_DEVICE_NODE", last, Sibling=n)
        else:
            self.put("_DEVICE_NODE", parent, Child=n)
        self.put("_DEVICE_NODE", parent, LastChild=n)
        self.put("_DEVICE_NODE", n, Parent=parent, Level=self._u32(parent + self.off("_DEVICE_NODE", "Level")) + 1)
        return n



    def pop_irp(self, irp, pdo, device, age_seconds, target_device=None):
        """The power manager's record of power IRP `irp` on nt!PopIrpList (only where the
        build's symbols type _POP_IRP_DATA): pending at `device`, its watchdog armed
        `age_seconds` ago (interrupt time)."""
        lay = self.layouts.layout("_POP_IRP_DATA")
        cur, count = (self._u8(irp + self.off("_IRP", f)) for f in ("CurrentLocation", "StackCount"))
        minor = ptype = pstate = 0
        if 1 <= cur <= count:
            sl = irp + self.size("_IRP") + (cur - 1) * self.size("_IO_STACK_LOCATION")
            minor = self._u8(sl + self.off("_IO_STACK_LOCATION", "MinorFunction"))
            ptype = self._u32(sl + self.off("_IO_STACK_LOCATION", "Parameters.Power.Type"))
            pstate = self._u32(sl + self.off("_IO_STACK_LOCATION", "Parameters.Power.State"))
        a = self.alloc(lay.size)
        self.put("_POP_IRP_DATA", a, Irp=irp, Pdo=pdo, TargetDevice=target_device or device,
                 CurrentDevice=device, MinorFunction=minor, PowerStateType=ptype, PowerState=pstate,
                 WatchdogStart=self.tick * TICK_100NS - int(age_seconds * 10 ** 7), WatchdogEnabled=1,
                 SystemTransition=1 if ptype == self.enum("_POWER_STATE_TYPE", "SystemPowerState") else 0)
        self.list_insert_tail(self.pop_irp_head, a + lay.offset("Link"))
        return a


    def irp(self, locations, current, thread=0, pending=True, cancel=False):
        """An IRP with len(locations) stack locations, each a dict of _IO_STACK_LOCATION fields
        (MajorFunction, MinorFunction, DeviceObject, CompletionRoutine as module!Func, and
        Parameters__Power__Type/State as names), pending at index `current` (None: not yet
        sent).  Queued on `thread`'s IRP list when given."""
        irp_size, sl = self.size("_IRP"), self.size("_IO_STACK_LOCATION")
        n = len(locations)
        a = self.alloc(irp_size + n * sl)
        cur = current + 1 if current is not None else n + 1
        self.put("_IRP", a, Type=6, Size=irp_size + n * sl, StackCount=n, CurrentLocation=cur,
                 Tail__Overlay__CurrentStackLocation=a + irp_size + (cur - 1) * sl,
                 Tail__Overlay__Thread=thread, PendingReturned=1 if pending else 0,
                 Cancel=1 if cancel else 0)
        for i, fields in enumerate(locations):
            fields = dict(fields)
            if isinstance(fields.get("CompletionRoutine"), str):
                fields["CompletionRoutine"] = self.code(fields["CompletionRoutine"])
            if isinstance(fields.get("Parameters__Power__Type"), str):
                fields["Parameters__Power__Type"] = self.enum("_POWER_STATE_TYPE", fields["Parameters__Power__Type"])
            if isinstance(fields.get("Parameters__Power__State"), str):
                enum = "_SYSTEM_POWER_STATE" if "System" in fields["Parameters__Power__State"] else "_DEVICE_POWER_STATE"
                fields["Parameters__Power__State"] = self.enum(enum, fields["Parameters__Power__State"])
            if i == current and "Control" not in fields and pending:
                fields["Control"] = 0x01                       # SL_PENDING_RETURNED
            self.put("_IO_STACK_LOCATION", a + irp_size + i * sl, **fields)
        if thread:
            self.list_insert_tail(thread + self.off("_ETHREAD", "IrpList"),
                                  a + self.off("_IRP", "ThreadListEntry"))
        else:
            self.list_init(a + self.off("_IRP", "ThreadListEntry"))
        return a

