"""I/O: driver and device objects, device stacks and nodes, IRPs, the power manager's IRP list.

The IRP operations play the kernel's routines: each writes the fields its routine writes, in
its order, and names the routine and the public source it follows (ReactOS
ntoskrnl/io/iomgr/irp.c, ntoskrnl/po/power.c, ntoskrnl/io/pnpmgr; the WRK's io/iomgr).
Nothing here writes what an analysis wants to see.
"""
from .memory import TICK_100NS

IO_TYPE_IRP = 6
IRP_MJ_READ, IRP_MJ_WRITE = 0x03, 0x04
IRP_MJ_DEVICE_CONTROL, IRP_MJ_INTERNAL_DEVICE_CONTROL = 0x0e, 0x0f
IRP_MJ_POWER = 0x16
IRP_MN_WAIT_WAKE = 0x00
SL_PENDING_RETURNED = 0x01
SL_ERROR_RETURNED = 0x02
SL_INVOKE_ON_CANCEL, SL_INVOKE_ON_SUCCESS, SL_INVOKE_ON_ERROR = 0x20, 0x40, 0x80
STATUS_NOT_SUPPORTED = 0xC00000BB
IRP_BUFFERED_IO, IRP_DEALLOCATE_BUFFER, IRP_INPUT_OPERATION = 0x10, 0x20, 0x40      # wdm.h IRP flags
METHOD_BUFFERED, METHOD_NEITHER = 0, 3                                               # wdm.h, CTL_CODE bits 0-1


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

    def load_driver_object(self, name, module, entry):
        """The driver object the I/O manager makes before it calls a driver's entry point
        (ReactOS ntoskrnl/io/iomgr/driver.c IopInitializeDriverModule and IoCreateDriver; WRK
        io/iomgr/internal.c IopLoadDriver): one object of sizeof(DRIVER_OBJECT) plus the driver
        extension, zeroed; Type IO_TYPE_DRIVER, Size; DriverExtension = (PDRIVER_EXTENSION)
        (DriverObject + 1) and its DriverObject back pointer; DriverInit = the image's entry
        point `entry` (module!Func); every MajorFunction[] = nt!IopInvalidDeviceRequest;
        DriverName, DriverStart / DriverSize = the image's.  The driver's own entry point then
        fills in the rest (driver_entry_sets)."""
        size = self.size("_DRIVER_OBJECT")
        a = self.alloc(size + self.size("_DRIVER_EXTENSION"))
        ext = a + size
        self.put("_DRIVER_OBJECT", a, Type=4, Size=size, DriverExtension=ext, DriverInit=self.code(entry))
        self.put("_DRIVER_EXTENSION", ext, DriverObject=a)
        invalid = self.code("nt!IopInvalidDeviceRequest")
        major = self.layouts.layout("_DRIVER_OBJECT").field("MajorFunction")
        for i in range(major.size // 8):
            self.u64(a + major.offset + 8 * i, invalid)
        self.unicode_string(a + self.off("_DRIVER_OBJECT", "DriverName"), name)
        m = self.modules[module]
        self.put("_DRIVER_OBJECT", a, DriverStart=m.base, DriverSize=m.size)
        return a

    def driver_entry_sets(self, driver, unload=None, add_device=None, major=None):
        """What a DriverEntry writes into its driver object (MS docs, "DriverEntry's Required
        Responsibilities"; wdm.h DRIVER_OBJECT): DriverUnload, DriverExtension->AddDevice, and
        MajorFunction[n] for the IRPs it handles (`major`: {IRP_MJ_ number: module!Func})."""
        if unload is not None:
            self.put("_DRIVER_OBJECT", driver, DriverUnload=self.code(unload))
        if add_device is not None:
            ext = self._u64(driver + self.off("_DRIVER_OBJECT", "DriverExtension"))
            self.put("_DRIVER_EXTENSION", ext, AddDevice=self.code(add_device))
        for n, routine in sorted((major or {}).items()):
            self.u64(driver + self.off("_DRIVER_OBJECT", "MajorFunction") + 8 * n, self.code(routine))

    def device_object(self, driver, extension_size=0, name=None, address=None):
        """A DEVICE_OBJECT of `driver` with its extension right behind it, as IoCreateDevice
        lays them out; returns (device, extension).  A named device also gets its object
        header with the name info below it (InfoMask 0x02).  `address`: where the device
        object itself lies (a published `!devstack` gives it); its headers go below it."""
        size = self.size("_DEVICE_OBJECT")
        if name is not None:
            ni, hdr = self.size("_OBJECT_HEADER_NAME_INFO"), self.off("_OBJECT_HEADER", "Body")
            if address is not None:
                block = address - hdr - ni
                self.mem.map(block, ni + hdr + size + extension_size)
            else:
                block = self.alloc(ni + hdr + size + extension_size)
            self.unicode_string(block + self.off("_OBJECT_HEADER_NAME_INFO", "Name"), name)
            self.put("_OBJECT_HEADER", block + ni, InfoMask=0x02, PointerCount=1)
            a = block + ni + hdr
        elif address is not None:
            a = address
            self.mem.map(a, size + extension_size)
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
        sent).  Queued on `thread`'s IRP list when given.  A shortcut that writes the result
        directly (and sets PendingReturned, which only IofCompleteRequest does): scenarios
        that stand for a real machine use io_allocate_irp / io_call_driver /
        io_mark_irp_pending / io_complete_request, iop_synchronous_call and
        po_request_power_irp below."""
        irp_size, sl = self.size("_IRP"), self.size("_IO_STACK_LOCATION")
        n = len(locations)
        a = self.alloc(irp_size + n * sl)
        cur = current + 1 if current is not None else n + 1
        self.put("_IRP", a, Type=6, Size=irp_size + n * sl, StackCount=n, CurrentLocation=cur,
                 Tail__Overlay__CurrentStackLocation=a + irp_size + (cur - 1) * sl,
                 Tail__Overlay__Thread=thread, PendingReturned=1 if pending else 0,
                 Cancel=1 if cancel else 0)
        for i, fields in enumerate(locations):
            fields = self._location_fields(fields)
            if i == current and "Control" not in fields and pending:
                fields["Control"] = 0x01                       # SL_PENDING_RETURNED
            self.put("_IO_STACK_LOCATION", a + irp_size + i * sl, **fields)
        if thread:
            self.list_insert_tail(thread + self.off("_ETHREAD", "IrpList"),
                                  a + self.off("_IRP", "ThreadListEntry"))
        else:
            self.list_init(a + self.off("_IRP", "ThreadListEntry"))
        return a

    # -- IRPs as the kernel's routines make them -------------------------------------------------

    def _sl(self, irp, index):
        """Address of stack location `index` (0-based; location number index + 1)."""
        return irp + self.size("_IRP") + index * self.size("_IO_STACK_LOCATION")

    def _irp_counts(self, irp):
        return (self._u8(irp + self.off("_IRP", "CurrentLocation")),
                self._u8(irp + self.off("_IRP", "StackCount")))

    def _location_fields(self, fields):
        """Stack-location fields by name: CompletionRoutine as module!Func, Parameters.Power
        Type/State as enum names."""
        fields = dict(fields)
        if isinstance(fields.get("CompletionRoutine"), str):
            fields["CompletionRoutine"] = self.code(fields["CompletionRoutine"])
        if isinstance(fields.get("Parameters__Power__Type"), str):
            fields["Parameters__Power__Type"] = self.enum("_POWER_STATE_TYPE", fields["Parameters__Power__Type"])
        if isinstance(fields.get("Parameters__Power__State"), str):
            enum = "_SYSTEM_POWER_STATE" if "System" in fields["Parameters__Power__State"] else "_DEVICE_POWER_STATE"
            fields["Parameters__Power__State"] = self.enum(enum, fields["Parameters__Power__State"])
        return fields

    def io_allocate_irp(self, stack_size, address=None):
        """IoAllocateIrp(StackSize) -> IoInitializeIrp (ReactOS ntoskrnl/io/iomgr/irp.c
        IoInitializeIrp; the decompiled Windows 10 IoInitializeIrp writes the same): zero the
        packet, Size, Type = IO_TYPE_IRP, StackCount, CurrentLocation = StackSize + 1,
        ThreadListEntry initialised to point at itself, Tail.Overlay.CurrentStackLocation one
        past the last stack location.  `address`: where the IRP lies (a published session
        gives it); else it is allocated."""
        size = self.size("_IRP") + stack_size * self.size("_IO_STACK_LOCATION")
        if address is None:
            address = self.alloc(size)
        else:
            self.mem.map(address, size)
        self.mem.write(address, bytes(size))
        self.put("_IRP", address, Type=IO_TYPE_IRP, Size=size, StackCount=stack_size,
                 CurrentLocation=stack_size + 1)
        self.list_init(address + self.off("_IRP", "ThreadListEntry"))
        self.put("_IRP", address, Tail__Overlay__CurrentStackLocation=self._sl(address, stack_size))
        return address

    def io_next_location(self, irp, **fields):
        """What a caller writes through IoGetNextIrpStackLocation before IoCallDriver
        (MajorFunction, MinorFunction, Parameters...; wdm.h IoGetNextIrpStackLocation =
        CurrentStackLocation - 1).  Returns the location's address."""
        cur, _ = self._irp_counts(irp)
        sl = self._sl(irp, cur - 2)
        if fields:
            self.put("_IO_STACK_LOCATION", sl, **self._location_fields(fields))
        return sl

    def io_copy_current_to_next(self, irp):
        """IoCopyCurrentIrpStackLocationToNext (wdm.h): copy the current location up to
        CompletionRoutine into the next one, and clear the next one's Control."""
        cur, _ = self._irp_counts(irp)
        src, dst = self._sl(irp, cur - 1), self._sl(irp, cur - 2)
        n = self.off("_IO_STACK_LOCATION", "CompletionRoutine")
        self.mem.write(dst, self.mem.read(src, n))
        self.put("_IO_STACK_LOCATION", dst, Control=0)

    def io_skip_current_location(self, irp):
        """IoSkipCurrentIrpStackLocation (wdm.h): CurrentLocation++, CurrentStackLocation++."""
        cur, _ = self._irp_counts(irp)
        self.put("_IRP", irp, CurrentLocation=cur + 1,
                 Tail__Overlay__CurrentStackLocation=self._sl(irp, cur))

    def io_set_next_location(self, irp):
        """IoSetNextIrpStackLocation (wdm.h): CurrentLocation--, CurrentStackLocation--."""
        cur, _ = self._irp_counts(irp)
        self.put("_IRP", irp, CurrentLocation=cur - 1,
                 Tail__Overlay__CurrentStackLocation=self._sl(irp, cur - 2))

    def io_set_completion_routine(self, irp, routine, context=0, success=True, error=True, cancel=True):
        """IoSetCompletionRoutine (wdm.h): the NEXT location's CompletionRoutine and Context,
        its Control = SL_INVOKE_ON_SUCCESS/ERROR/CANCEL as asked."""
        control = ((SL_INVOKE_ON_SUCCESS if success else 0) | (SL_INVOKE_ON_ERROR if error else 0)
                   | (SL_INVOKE_ON_CANCEL if cancel else 0))
        self.io_next_location(irp, CompletionRoutine=routine, Context=context, Control=control)

    def io_call_driver(self, irp, device):
        """IoCallDriver / IofCallDriver (ReactOS ntoskrnl/io/iomgr/irp.c IofCallDriver; WRK
        IopfCallDriver): CurrentLocation--, (NO_MORE_IRP_STACK_LOCATIONS when it reaches 0),
        CurrentStackLocation = the next location, whose DeviceObject = `device`; then the
        driver's dispatch routine runs (what it does is the scenario's next call)."""
        cur, _ = self._irp_counts(irp)
        if cur - 1 <= 0:
            raise ValueError("IRP 0x%x: NO_MORE_IRP_STACK_LOCATIONS (bug check 0x35)" % irp)
        sl = self._sl(irp, cur - 2)
        self.put("_IRP", irp, CurrentLocation=cur - 1, Tail__Overlay__CurrentStackLocation=sl)
        self.put("_IO_STACK_LOCATION", sl, DeviceObject=device)
        return sl

    def io_pass_down(self, irp, lower, copy=True, completion=None, context=0):
        """What a filter or function driver does to pass the IRP to the device below:
        IoCopyCurrentIrpStackLocationToNext (copy=True; else the caller fills the next
        location), optionally IoSetCompletionRoutine, then IoCallDriver(lower)."""
        if copy:
            self.io_copy_current_to_next(irp)
        if completion:
            self.io_set_completion_routine(irp, completion, context)
        return self.io_call_driver(irp, lower)

    def io_mark_irp_pending(self, irp):
        """IoMarkIrpPending (wdm.h): the current location's Control |= SL_PENDING_RETURNED.
        Irp->PendingReturned is not touched: only IofCompleteRequest sets it."""
        cur, _ = self._irp_counts(irp)
        sl = self._sl(irp, cur - 1)
        c = self._u8(sl + self.off("_IO_STACK_LOCATION", "Control"))
        self.put("_IO_STACK_LOCATION", sl, Control=c | SL_PENDING_RETURNED)

    def _clear_location(self, sl):
        """IopClearStackLocation (ReactOS ntoskrnl/io/iomgr/irp.c): MinorFunction, Flags,
        Control &= SL_ERROR_RETURNED, Argument1..3, FileObject.  MajorFunction, DeviceObject,
        CompletionRoutine and Context stay."""
        c = self._u8(sl + self.off("_IO_STACK_LOCATION", "Control"))
        self.put("_IO_STACK_LOCATION", sl, MinorFunction=0, Flags=0, Control=c & SL_ERROR_RETURNED,
                 Parameters__Others__Argument1=0, Parameters__Others__Argument2=0,
                 Parameters__Others__Argument3=0, FileObject=0)

    def io_complete_request(self, irp, status=0):
        """The driver sets IoStatus.Status and calls IoCompleteRequest -> IofCompleteRequest
        (ReactOS ntoskrnl/io/iomgr/irp.c; WRK IopfCompleteRequest): CurrentLocation above
        StackCount + 1 is MULTIPLE_IRP_COMPLETE_REQUESTS; then from the current location up,
        CurrentLocation++ and CurrentStackLocation++ each step while CurrentLocation <=
        StackCount + 1: PendingReturned = Control & SL_PENDING_RETURNED; a location whose
        completion routine is due is cleared and its routine called (modelled as returning
        STATUS_SUCCESS: the walk goes on); otherwise, if PendingReturned and CurrentLocation <=
        StackCount, IoMarkIrpPending on the new current location, and the location is cleared.
        It ends with CurrentLocation == StackCount + 2.  The IRP stays on its thread's IrpList
        until the IopCompleteRequest APC runs: this is the memory before it does.
        Only success statuses (the error bookkeeping in SL_ERROR_RETURNED is not modelled)."""
        if status & 0xC0000000 == 0xC0000000:
            raise ValueError("io_complete_request models success statuses only")
        cur, count = self._irp_counts(irp)
        if cur > count + 1:
            raise ValueError("IRP 0x%x: MULTIPLE_IRP_COMPLETE_REQUESTS (bug check 0x44)" % irp)
        self.put("_IRP", irp, IoStatus__Status=status)
        control_off = self.off("_IO_STACK_LOCATION", "Control")
        index = cur - 1                                   # StackPtr = IoGetCurrentIrpStackLocation
        cur += 1
        self.put("_IRP", irp, CurrentLocation=cur, Tail__Overlay__CurrentStackLocation=self._sl(irp, cur - 1))
        while cur <= count + 1:
            sp = self._sl(irp, index)
            control = self._u8(sp + control_off)
            pending = control & SL_PENDING_RETURNED
            self.put("_IRP", irp, PendingReturned=1 if pending else 0)
            if control & SL_INVOKE_ON_SUCCESS:
                self._clear_location(sp)                  # then CompletionRoutine(...) runs
            else:
                if cur <= count and pending:
                    self.io_mark_irp_pending(irp)
                self._clear_location(sp)
            index += 1
            cur += 1
            self.put("_IRP", irp, CurrentLocation=cur, Tail__Overlay__CurrentStackLocation=self._sl(irp, cur - 1))
        return irp

    def iop_queue_thread_irp(self, irp, thread):
        """IopQueueThreadIrp (WRK io/iomgr/iomgr.h macro; ReactOS IopQueueIrpToThread):
        InsertHeadList(&Irp->Tail.Overlay.Thread->IrpList, &Irp->ThreadListEntry).  The
        caller has set Tail.Overlay.Thread (IopSynchronousCall, IoBuildSynchronousFsdRequest's
        callers): a synchronous IRP is queued on the thread that waits for it."""
        head = thread + self.off("_ETHREAD", "IrpList")
        entry = irp + self.off("_IRP", "ThreadListEntry")
        flink = self._u64(head)
        self.u64(entry, flink)
        self.u64(entry + 8, head)
        self.u64(flink + 8, entry)
        self.u64(head, entry)

    def io_build_device_io_control_request(self, thread, code, device, event, iosb, internal=False,
                                           input_length=0, output_length=0, address=None):
        """IoBuildDeviceIoControlRequest, called by `thread` (ReactOS ntoskrnl/io/iomgr/irp.c
        IoBuildDeviceIoControlRequest): IoAllocateIrp(DeviceObject->StackSize); the next
        location's MajorFunction = IRP_MJ_INTERNAL_DEVICE_CONTROL or IRP_MJ_DEVICE_CONTROL and
        Parameters.DeviceIoControl.IoControlCode / InputBufferLength / OutputBufferLength;
        METHOD_BUFFERED: a system buffer of the larger length when there is one (Flags =
        IRP_BUFFERED_IO | IRP_DEALLOCATE_BUFFER, | IRP_INPUT_OPERATION with an output buffer; pool tag
        TAG_SYS_BUF 'SYSB'), else Flags = 0; METHOD_NEITHER: nothing more (the caller's buffers are left 0 here);
        the direct methods (an MDL) are not modelled.  Then UserIosb = `iosb`, UserEvent =
        `event`, Tail.Overlay.Thread = the current thread and IoQueueThreadIrp: the IRP is on
        the calling thread's IrpList.  It is not sent: the caller calls IoCallDriver
        (io_call_driver) and, for a synchronous request, KeWaitForSingleObject on `event`
        (wait_on).  Returns the IRP."""
        method = code & 3
        if method not in (METHOD_BUFFERED, METHOD_NEITHER):
            raise ValueError("IOCTL 0x%x: METHOD_IN/OUT_DIRECT (an MDL) is not modelled" % code)
        irp = self.io_allocate_irp(self._stack_size(device), address)
        self.io_next_location(irp, MajorFunction=IRP_MJ_INTERNAL_DEVICE_CONTROL if internal else IRP_MJ_DEVICE_CONTROL,
                              Parameters__DeviceIoControl__IoControlCode=code,
                              Parameters__DeviceIoControl__InputBufferLength=input_length,
                              Parameters__DeviceIoControl__OutputBufferLength=output_length)
        length = max(input_length, output_length)
        if method == METHOD_BUFFERED and length:
            self.put("_IRP", irp, AssociatedIrp__SystemBuffer=self.alloc_pool(length, "SYSB"),
                     Flags=IRP_BUFFERED_IO | IRP_DEALLOCATE_BUFFER | (IRP_INPUT_OPERATION if output_length else 0))
        self.put("_IRP", irp, UserIosb=iosb, UserEvent=event, Tail__Overlay__Thread=thread)
        self.iop_queue_thread_irp(irp, thread)
        return irp

    def io_build_synchronous_fsd_request(self, thread, major, device, event, iosb, length=0, offset=0,
                                         address=None):
        """IoBuildSynchronousFsdRequest, called by `thread` (ReactOS ntoskrnl/io/iomgr/irp.c):
        IoBuildAsynchronousFsdRequest -- IoAllocateIrp(DeviceObject->StackSize), the next
        location's MajorFunction, for IRP_MJ_READ / IRP_MJ_WRITE Parameters.Read/Write.Length
        and ByteOffset (a device with neither DO_BUFFERED_IO nor DO_DIRECT_IO, as the builder
        makes them: the caller's buffer is UserBuffer, left 0 here), UserIosb = `iosb`,
        Tail.Overlay.Thread = the current thread -- then UserEvent = `event` and
        IoQueueThreadIrp.  Not sent: the caller calls IoCallDriver and waits on `event`.
        Returns the IRP."""
        irp = self.io_allocate_irp(self._stack_size(device), address)
        fields = {"MajorFunction": major}
        if major in (IRP_MJ_READ, IRP_MJ_WRITE):
            part = "Read" if major == IRP_MJ_READ else "Write"
            fields["Parameters__%s__Length" % part] = length
            fields["Parameters__%s__ByteOffset" % part] = offset
        self.io_next_location(irp, **fields)
        self.put("_IRP", irp, UserIosb=iosb, Tail__Overlay__Thread=thread)
        self.put("_IRP", irp, UserEvent=event)
        self.iop_queue_thread_irp(irp, thread)
        return irp

    def _top_of_stack(self, device):
        """IoGetAttachedDevice(Reference): follow AttachedDevice to the top."""
        top = device
        while True:
            up = self._u64(top + self.off("_DEVICE_OBJECT", "AttachedDevice"))
            if not up:
                return top
            top = up

    def _stack_size(self, device):
        return self._u8(device + self.off("_DEVICE_OBJECT", "StackSize"))

    def iop_synchronous_call(self, thread, device, major, minor, stack_size=None, address=None, **params):
        """The PnP manager's IopSynchronousCall (ReactOS ntoskrnl/io/pnpmgr/pnpirp.c; the
        decompiled Win10/11 routine calls IopQueueThreadIrp the same way): TopDeviceObject =
        IoGetAttachedDeviceReference(device); IoAllocateIrp(TopDeviceObject->StackSize)
        (`stack_size` overrides it when a session shows another count);
        IoStatus.Status = STATUS_NOT_SUPPORTED; Tail.Overlay.Thread = the calling thread;
        IopQueueThreadIrp; the caller's stack location copied into the next one; IoCallDriver
        (TopDeviceObject).  UserIosb/UserEvent point at the caller's stack locals, which the
        builder does not lay out: left 0.  Returns the IRP, now at the top device."""
        top = self._top_of_stack(device)
        irp = self.io_allocate_irp(stack_size or self._stack_size(top), address)
        self.put("_IRP", irp, IoStatus__Status=STATUS_NOT_SUPPORTED, Tail__Overlay__Thread=thread)
        self.iop_queue_thread_irp(irp, thread)
        self.io_next_location(irp, MajorFunction=major, MinorFunction=minor, **params)
        self.io_call_driver(irp, top)
        return irp

    def po_request_power_irp(self, device, minor, power_type="DevicePowerState", state=None,
                             completion="nt!PopRequestCompletion", context=0, address=None):
        """PoRequestPowerIrp (ReactOS ntoskrnl/po/power.c PoRequestPowerIrp and its
        PopAllocatePowerIrp): TopDeviceObject = IoGetAttachedDeviceReference(device);
        IoAllocateIrp(TopDeviceObject->StackSize + 2); IoStatus = STATUS_NOT_SUPPORTED, 0;
        IoSetNextIrpStackLocation; the next location gets Argument1..4 = (device, minor,
        state, context) and DeviceObject = TopDeviceObject; IoSetNextIrpStackLocation; the
        next location gets IRP_MJ_POWER, minor and Parameters.Power (a wait-wake IRP:
        Parameters.WaitWake.PowerState); IoSetCompletionRoutine(power completion, TRUE, TRUE,
        TRUE); PoCallDriver(TopDeviceObject) (IoCallDriver since Vista).  No thread is set and
        the IRP is queued on no thread's IrpList.  Returns the IRP, now at the top device."""
        top = self._top_of_stack(device)
        irp = self.io_allocate_irp(self._stack_size(top) + 2, address)
        self.put("_IRP", irp, IoStatus__Status=STATUS_NOT_SUPPORTED, IoStatus__Information=0)
        self.io_set_next_location(irp)
        value = 0
        if state is not None:
            enum = "_SYSTEM_POWER_STATE" if "System" in state else "_DEVICE_POWER_STATE"
            value = self.enum(enum, state)
        self.io_next_location(irp, Parameters__Others__Argument1=device, Parameters__Others__Argument2=minor,
                              Parameters__Others__Argument3=value, Parameters__Others__Argument4=context,
                              DeviceObject=top)
        self.io_set_next_location(irp)
        if minor == IRP_MN_WAIT_WAKE:
            self.io_next_location(irp, MajorFunction=IRP_MJ_POWER, MinorFunction=minor,
                                  Parameters__WaitWake__PowerState=value)
        else:
            self.io_next_location(irp, MajorFunction=IRP_MJ_POWER, MinorFunction=minor,
                                  Parameters__Power__Type=power_type, Parameters__Power__State=value)
        if completion:
            self.io_set_completion_routine(irp, completion, context)
        self.io_call_driver(irp, top)
        return irp

