"""The scenario builder: lays real kernel structures out, by a build's layout, in a sparse
memory image, and writes the result as a mock target file.

    b = ScenarioBuilder("win10-22h2-x64-10.0.19041.3570")
    system = b.process("System", pid=4)
    r1, r2 = b.eresource(), b.eresource()
    t = b.thread(system, tid=0x1a4, start="TestDriver!FileMoveThread", frames=[...])
    b.acquire_resource(r1, t)                 # owner entry, flag, active count
    b.wait_resource(t, r2)                    # what this build's kernel does for a waiter
    b.save("mock_targets/x.json.gz")

The builder plays the kernel: where builds differ in mechanics (how an ERESOURCE waiter
blocks, how wait blocks link) it does what that build's kernel does, choosing by what the
layout holds.  The analysis only ever sees the memory, symbols, stacks and layouts it writes.
"""
import base64
import json
import random
import struct

from ..target.layouts import load_shipped, supplement
from ..target.mock import FORMAT, VERSION, MockTarget, save_document

PAGE = 0x1000
NT_BASE = 0xfffff80002600000
NT_SIZE = 0x600000
HAL_BASE = 0xfffff80002c00000
DRIVER_BASE = 0xfffff88000e00000
POOL_BASE = 0xfffffa8000c00000
BOOT_POOL_BASE = 0xfffffa8000a00000
STACK_BASE = 0xfffff88003000000
STACK_SIZE = 0x6000
SCATTER_SPAN = 0x4000000            # room for one pool region of a scattered layout
FUNC_SLOT = 0x1000                  # room for one function's code: frame offsets must fit
TICK_100NS = 156250                 # KeMaximumIncrement: 15.625 ms


class Memory(object):
    """Sparse memory: whole pages, zero-filled, created by writing."""

    def __init__(self):
        self.pages = {}

    def write(self, address, data):
        a = address
        i = 0
        while i < len(data):
            base = a - (a % PAGE)
            page = self.pages.get(base)
            if page is None:
                page = self.pages[base] = bytearray(PAGE)
            n = min(len(data) - i, base + PAGE - a)
            page[a - base:a - base + n] = data[i:i + n]
            a += n
            i += n

    def map(self, address, size):
        """Make [address, address+size) readable (zeros) without writing anything."""
        self.write(address, b"")
        a = address - (address % PAGE)
        while a < address + size:
            self.pages.setdefault(a, bytearray(PAGE))
            a += PAGE

    def read(self, address, size):
        out = bytearray()
        a = address
        while len(out) < size:
            base = a - (a % PAGE)
            page = self.pages.get(base, bytes(PAGE))
            n = min(size - len(out), base + PAGE - a)
            out += page[a - base:a - base + n]
            a += n
        return bytes(out)

    def unmap(self, address):
        self.pages.pop(address - (address % PAGE), None)

    def ranges(self):
        out = []
        for base in sorted(self.pages):
            if out and out[-1][0] + len(out[-1][1]) == base:
                out[-1][1].extend(self.pages[base])
            else:
                out.append([base, bytearray(self.pages[base])])
        return [{"address": "0x%x" % a, "data": base64.b64encode(bytes(d)).decode("ascii")} for a, d in out]


class ModuleInfo(object):
    def __init__(self, name, image, base, size):
        self.name, self.image, self.base, self.size = name, image, base, size
        self.next_func = base + 0x1000
        self.next_data = base + size // 2


class ThreadInfo(object):
    """What the builder remembers of a thread it made (never shipped to the analysis)."""

    def __init__(self, address, process, stack_limit, stack_base, start):
        self.address = address
        self.start = start
        self.process = process
        self.stack_limit = stack_limit
        self.stack_base = stack_base
        self.frames = []      # [(symbol, sp)]


MAX_PROCESSORS = 64        # slots of the KiProcessorBlock array laid out


class ScenarioBuilder(object):
    def __init__(self, build, comment="", compact_stacks=False, scatter=0, seed=0):
        """`compact_stacks`: map only the stack pages a thread's frames use (large generated
        targets: tens of thousands of threads), not the whole kernel stack.
        `scatter`: lay pool objects out over this many regions, each object in one picked at
        random (a long-running machine's fragmented pool: objects made one after another do
        not sit one after another); 0 lays them out in the order they are made."""
        self.layouts = load_shipped(build)
        self.compact_stacks = compact_stacks
        self.build = build
        self.comment = comment
        self.mem = Memory()
        self.modules = {}
        self.symbols = {}
        self._sym_index = {}         # lower-case name -> address
        self._func_size = {}         # lower-case function name -> bytes of code laid out
        self.threads = {}            # KTHREAD -> ThreadInfo (the builder's own bookkeeping)
        self.stacks = {}
        self.processors = []
        self._processor_block = None
        self.bugcheck_data = None
        self._pool = POOL_BASE
        self._regions = None         # [next free address] of each scattered pool region
        self._stack = STACK_BASE
        self._next_driver = DRIVER_BASE
        self.module("nt", "ntkrnlmp.exe", NT_BASE, NT_SIZE)
        self.module("hal", "hal.dll", HAL_BASE, 0x80000)
        self.tick = 0x60000
        shared = int(supplement()["addresses"]["KI_USER_SHARED_DATA"], 16)
        self._shared = shared
        self.set_tick(self.tick)
        self.u32(self.global_("nt!KeMaximumIncrement", 4), TICK_100NS)
        self.u32(self.global_("nt!KeTimeIncrement", 4), TICK_100NS)
        self.process_head = self.global_("nt!PsActiveProcessHead", 16)
        self.list_init(self.process_head)
        self.resource_head = self.global_("nt!ExpSystemResourcesList", 16)
        self.list_init(self.resource_head)
        self.pop_irp_head = self.global_("nt!PopIrpList", 16)
        self.list_init(self.pop_irp_head)
        # the PnP device tree's root (HTREE\ROOT\0, whose PDO belongs to \Driver\PnpManager)
        # (made at boot: from a pool region of their own, so scenario objects keep their places)
        pool, self._pool = self._pool, BOOT_POOL_BASE
        pnpmgr = self.driver_object("\\Driver\\PnpManager", module="nt")
        root_pdo, _ = self.device_object(pnpmgr)
        self.root_devnode = self._new_devnode(root_pdo, "HTREE\\ROOT\\0", "")
        self._pool = pool
        self._boot_data = NT_BASE + NT_SIZE - 0x10000
        self.timer_res_head = self._boot_global("nt!ExpTimerResolutionListHead", 16)
        self.list_init(self.timer_res_head)
        self.u32(self._boot_global("nt!KeMinimumIncrement", 4), 5000)
        self.u64(self.global_("nt!IopRootDeviceNode", 8), self.root_devnode)
        if scatter:
            self._scatter_rnd = random.Random(seed)
            self._regions = [POOL_BASE + i * SCATTER_SPAN for i in range(scatter)]

    # -- raw memory ------------------------------------------------------------------------

    def u8(self, a, v):
        self.mem.write(a, struct.pack("<B", v & 0xff))

    def u16(self, a, v):
        self.mem.write(a, struct.pack("<H", v & 0xffff))

    def u32(self, a, v):
        self.mem.write(a, struct.pack("<I", v & 0xffffffff))

    def u64(self, a, v):
        self.mem.write(a, struct.pack("<Q", v & 0xffffffffffffffff))

    def alloc(self, size, align=16):
        if self._regions is not None:
            i = self._scatter_rnd.randrange(len(self._regions))
            a = (self._regions[i] + align - 1) // align * align
            if a + size > POOL_BASE + (i + 1) * SCATTER_SPAN:
                raise ValueError("scattered pool region %d is full" % i)
            self._regions[i] = a + size
        else:
            a = (self._pool + align - 1) // align * align
            self._pool = a + size
        self.mem.map(a, size)
        return a

    def set_tick(self, tick):
        self.tick = tick
        self.u64(self._shared + 0x320, tick)
        self.u32(self._shared + 4, 0x0fa00000)
        self.u64(self._shared + 0x8, tick * TICK_100NS)      # InterruptTime, 100 ns units

    # -- layouts -----------------------------------------------------------------------------

    def _resolve(self, typename, path):
        """(offset, Field) of a possibly dotted field path through embedded structures."""
        lay = self.layouts.layout(typename)
        if lay.has(path) or "." not in path:
            return lay.offset(path), lay.field(path)
        head, rest = path.split(".", 1)
        f = lay.field(head)
        off, field = self._resolve(f.type, rest)
        return f.offset + off, field

    def has(self, typename, path):
        try:
            self._resolve(typename, path)
            return True
        except KeyError:
            return False

    def off(self, typename, path):
        return self._resolve(typename, path)[0]

    def put(self, typename, address, **fields):
        """Write fields by name (dots reach into embedded structures: Tcb__Header__Type)."""
        for name, value in fields.items():
            off, f = self._resolve(typename, name.replace("__", "."))
            a = address + off
            if isinstance(value, (bytes, bytearray)):
                self.mem.write(a, bytes(value)[:f.size])
                continue
            size = f.size if f.size in (1, 2, 4, 8) else 8
            if f.bit_length is not None:
                cur = int.from_bytes(self.mem.read(a, size), "little")
                mask = ((1 << f.bit_length) - 1) << f.bit_position
                value = (cur & ~mask) | ((value << f.bit_position) & mask)
            self.mem.write(a, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))

    def size(self, typename):
        return self.layouts.layout(typename).size

    def enum(self, name, key):
        return self.layouts.enum(name)[key]

    # -- modules and symbols -------------------------------------------------------------------

    def module(self, name, image=None, base=None, size=0x40000):
        if name in self.modules:
            return self.modules[name]
        if base is None:
            base = self._next_driver
            self._next_driver += max(size, 0x100000)
        m = self.modules[name] = ModuleInfo(name, image or name + ".sys", base, size)
        return m

    def sym(self, name, size=FUNC_SLOT):
        """Address of function `module!Func` (made on first use, `size` bytes of code), or
        `module+0xoff`."""
        if name.lower() in self._sym_index:
            return self._sym_index[name.lower()]
        mod, _, func = name.partition("!")
        if "+" in name and not func:
            mod, off = name.split("+")
            return self.modules[mod].base + int(off, 16)
        m = self.module(mod)
        a = m.next_func
        m.next_func += size
        self._add_symbol(name, a)
        self._func_size[name.lower()] = size
        return a

    def _add_symbol(self, name, address):
        self.symbols[name] = address
        self._sym_index[name.lower()] = address

    def _boot_global(self, name, size):
        """A kernel global laid out at boot, from nt's data region of its own (scenario
        globals keep their places)."""
        a = self._boot_data
        self._boot_data += (size + 15) // 16 * 16
        self._add_symbol(name, a)
        self.mem.map(a, size)
        return a

    def global_(self, name, size, align=16):
        mod = name.split("!")[0]
        m = self.module(mod)
        a = (m.next_data + align - 1) // align * align
        m.next_data = a + size
        self._add_symbol(name, a)
        self.mem.map(a, size)
        return a

    def code(self, spec):
        """`nt!KiSwapContext+0x7a` or `ZTEusbnet+0x35dd` -> an instruction address."""
        if "!" in spec:
            func, _, off = spec.partition("+")
            off = int(off, 16) if off else 0
            size = self._func_size.get(func.lower())
            if size is None:             # a long function (ndis!ndisInterruptDpc+0x269ce) gets room
                return self.sym(func, max(FUNC_SLOT, (off // FUNC_SLOT + 1) * FUNC_SLOT)) + off
            if off >= size:
                raise ValueError("%s: offset beyond the %#x bytes given to %s" % (spec, size, func))
            return self.sym(func) + off
        mod, _, off = spec.partition("+")
        return self.module(mod).base + int(off or "0", 16)

    # -- lists -------------------------------------------------------------------------------

    def list_init(self, head):
        self.u64(head, head)
        self.u64(head + 8, head)

    def list_insert_tail(self, head, entry):
        blink = int.from_bytes(self.mem.read(head + 8, 8), "little")
        self.u64(entry, head)
        self.u64(entry + 8, blink)
        self.u64(blink, entry)
        self.u64(head + 8, entry)

    # -- processes and threads ----------------------------------------------------------------

    def process(self, name, pid, listed=True):
        """An _EPROCESS; `listed=False` keeps it off PsActiveProcessHead, as the Idle process is."""
        a = self.alloc(self.size("_EPROCESS"))
        self.put("_EPROCESS", a, Pcb__Header__Type=self.enum("_KOBJECTS", "ProcessObject"),
                 UniqueProcessId=pid, ImageFileName=name.encode("latin-1")[:14])
        if listed:
            self.list_insert_tail(self.process_head, a + self.off("_EPROCESS", "ActiveProcessLinks"))
        else:
            self.list_init(a + self.off("_EPROCESS", "ActiveProcessLinks"))
        self.list_init(a + self.off("_EPROCESS", "ThreadListHead"))
        self.list_init(a + self.off("_EPROCESS", "Pcb.ThreadListHead"))
        return a

    def thread(self, process, tid, start, state="Waiting", wait_reason="Executive", waited_ticks=0,
               frames=(), pid=None):
        """A thread of `process` (an _EPROCESS address).  frames: innermost first, as
        `module!Func+0xoff` strings; the builder gives each a stack pointer on its stack."""
        a = self.alloc(self.size("_ETHREAD"))
        limit = self._stack
        base = limit + STACK_SIZE
        self._stack += STACK_SIZE + 0x2000
        if pid is None:
            pid = int.from_bytes(self.mem.read(process + self.off("_EPROCESS", "UniqueProcessId"), 8), "little")
        sp = base - 0x1000 + 0x100 - 0x48 * len(frames)
        kernel_stack = sp - 0x40
        if self.compact_stacks:
            self.mem.map(kernel_stack, base - kernel_stack)
        else:
            self.mem.map(limit, STACK_SIZE)
        self.put("_ETHREAD", a,
                 Tcb__Header__Type=self.enum("_KOBJECTS", "ThreadObject"),
                 Tcb__State=self.enum("_KTHREAD_STATE", state),
                 Tcb__WaitReason=self.enum("_KWAIT_REASON", wait_reason),
                 Tcb__WaitTime=(self.tick - waited_ticks) & 0xffffffff,
                 Tcb__InitialStack=base - 0x1d0, Tcb__StackBase=base, Tcb__StackLimit=limit,
                 Tcb__KernelStack=kernel_stack, Tcb__Process=process,
                 Cid__UniqueProcess=pid, Cid__UniqueThread=tid,
                 StartAddress=self.code(start), Win32StartAddress=self.code(start))
        self.list_insert_tail(process + self.off("_EPROCESS", "ThreadListHead"),
                              a + self.off("_ETHREAD", "ThreadListEntry"))
        self.list_insert_tail(process + self.off("_EPROCESS", "Pcb.ThreadListHead"),
                              a + self.off("_KTHREAD", "ThreadListEntry"))
        self.list_init(a + self.off("_KTHREAD", "MutantListHead"))
        self.list_init(a + self.off("_ETHREAD", "IrpList"))
        info = ThreadInfo(a, process, limit, base, start)
        out = []
        for i, spec in enumerate(frames):
            ip = self.code(spec)
            fsp = sp + 0x48 * i
            info.frames.append((spec, fsp))
            out.append([ip, fsp])
        self.stacks[a] = [{"ip": "0x%x" % ip, "sp": "0x%x" % fsp,
                           "ret": "0x%x" % (out[i + 1][0] if i + 1 < len(out) else 0),
                           "fp": "0x0"} for i, (ip, fsp) in enumerate(out)]
        for i, (ip, fsp) in enumerate(out):          # return addresses where x64 pushes them
            if i + 1 < len(out):
                self.u64(out[i + 1][1] - 8, out[i + 1][0])
        self.threads[a] = info
        return a

    def thread_started_at(self, start):
        """The thread this builder made with start routine `start` (module!Func)."""
        return next(a for a, t in self.threads.items() if t.start == start)

    def frame_sp(self, thread, function):
        """The stack pointer of the first frame of `thread` in `function` (module!Func)."""
        for spec, sp in self.threads[thread].frames:
            if spec.split("+")[0].lower() == function.lower():
                return sp
        raise KeyError("thread 0x%x has no frame in %s" % (thread, function))

    def stack_word(self, thread, function, offset, value):
        """Write a word into the frame of `function` on `thread`'s stack (a spilled register
        or argument home slot)."""
        self.u64(self.frame_sp(thread, function) + offset, value)

    def wait_on(self, thread, objects, wait_reason=None):
        """Make `thread` wait on dispatcher objects (WaitAny), wait blocks as its build lays them."""
        kt = "_KTHREAD"
        wb0 = thread + self.off(kt, "WaitBlock")
        wbsize = self.size("_KWAIT_BLOCK")
        ring = self.has("_KWAIT_BLOCK", "NextWaitBlock")
        for i, obj in enumerate(objects):
            wb = wb0 + i * wbsize
            fields = dict(Thread=thread, Object=obj, WaitKey=i, WaitType=1)
            if ring:
                fields["NextWaitBlock"] = wb0 + ((i + 1) % len(objects)) * wbsize
            if self.has("_KWAIT_BLOCK", "BlockState"):
                fields["BlockState"] = self.enum("_KWAIT_BLOCK_STATE", "WaitBlockActive")
            self.put("_KWAIT_BLOCK", wb, **fields)
        self.put(kt, thread, WaitBlockList=wb0, State=self.enum("_KTHREAD_STATE", "Waiting"))
        if self.has(kt, "WaitBlockCount"):
            self.put(kt, thread, WaitBlockCount=len(objects))
        if wait_reason:
            self.put(kt, thread, WaitReason=self.enum("_KWAIT_REASON", wait_reason))

    def sleep(self, thread):
        """KeDelayExecutionThread: the thread waits on its own KTHREAD.Timer."""
        timer = thread + self.off("_KTHREAD", "Timer")
        self.put("_KTIMER", timer, Header__Type=self.enum("_KOBJECTS", "TimerNotificationObject"))
        self.wait_on(thread, [timer], "DelayExecution")

    # -- dispatcher objects ---------------------------------------------------------------------

    def event(self, notification=True, signaled=False, address=None):
        a = address if address is not None else self.alloc(self.size("_KEVENT"))
        typ = "EventNotificationObject" if notification else "EventSynchronizationObject"
        self.put("_KEVENT", a, Header__Type=self.enum("_KOBJECTS", typ), Header__Size=6,
                 Header__SignalState=1 if signaled else 0)
        self.list_init(a + self.off("_DISPATCHER_HEADER", "WaitListHead"))
        return a

    def semaphore(self, limit=0x7fffffff):
        a = self.alloc(self.size("_KSEMAPHORE"))
        self.put("_KSEMAPHORE", a, Header__Type=self.enum("_KOBJECTS", "SemaphoreObject"), Header__Size=8,
                 Limit=limit)
        self.list_init(a + self.off("_DISPATCHER_HEADER", "WaitListHead"))
        return a

    def mutant(self, owner=None, address=None):
        a = address if address is not None else self.alloc(self.size("_KMUTANT"))
        self.put("_KMUTANT", a, Header__Type=self.enum("_KOBJECTS", "MutantObject"), Header__Size=0xe,
                 Header__SignalState=0 if owner else 1, OwnerThread=owner or 0)
        self.list_init(a + self.off("_DISPATCHER_HEADER", "WaitListHead"))
        if owner:
            self.list_insert_tail(owner + self.off("_KTHREAD", "MutantListHead"),
                                  a + self.off("_KMUTANT", "MutantListEntry"))
        return a

    def fast_mutex(self, owner=None, address=None):
        """A FAST_MUTEX (on 8.1 and later also what KGUARDED_MUTEX is)."""
        a = address if address is not None else self.alloc(self.size("_FAST_MUTEX"))
        self.put("_FAST_MUTEX", a, Count=0 if owner else 1, Owner=owner or 0)
        self.event(notification=False, address=a + self.off("_FAST_MUTEX", "Event"))
        return a

    def wait_fast_mutex(self, thread, fm):
        self.put("_FAST_MUTEX", fm, Contention=1)
        self.wait_on(thread, [fm + self.off("_FAST_MUTEX", "Event")], "WrFastMutex")

    # -- executive resources -------------------------------------------------------------------

    def eresource(self, address=None, name=None):
        """An initialised ERESOURCE on nt!ExpSystemResourcesList: in pool, at `address`,
        or as global `name` (module!Name)."""
        if name is not None:
            a = self.global_(name, self.size("_ERESOURCE"))
        elif address is not None:
            a = address
        else:
            a = self.alloc(self.size("_ERESOURCE"))
        self.mem.map(a, self.size("_ERESOURCE"))
        self.list_insert_tail(self.resource_head, a + self.off("_ERESOURCE", "SystemResourcesList"))
        return a

    def _res(self, r, field):
        off, f = self._resolve("_ERESOURCE", field)
        return int.from_bytes(self.mem.read(r + off, f.size), "little")

    def acquire_resource(self, r, thread, exclusive=True):
        active = self._res(r, "ActiveCount")
        if exclusive:
            self.put("_ERESOURCE", r, Flag=self._res(r, "Flag") | 0x80, ActiveCount=active + 1,
                     OwnerEntry__OwnerThread=thread, OwnerEntry__OwnerCount=1)
            return
        if self._res(r, "OwnerEntry.OwnerThread") == 0:
            self.put("_ERESOURCE", r, ActiveCount=active + 1, OwnerEntry__OwnerThread=thread,
                     OwnerEntry__OwnerCount=1)
            return
        # further shared owners go to the owner table (entry 0 carries TableSize)
        table = self._res(r, "OwnerTable")
        osz = self.size("_OWNER_ENTRY")
        if not table:
            table = self.alloc(osz * 8)
            self.put("_OWNER_ENTRY", table, TableSize=8)
            self.put("_ERESOURCE", r, OwnerTable=table)
        for i in range(1, 8):
            e = table + i * osz
            if int.from_bytes(self.mem.read(e, 8), "little") == 0:
                self.put("_OWNER_ENTRY", e, OwnerThread=thread, OwnerCount=1)
                break
        self.put("_ERESOURCE", r, ActiveCount=active + 1)

    def wait_resource(self, thread, r, exclusive=True):
        """Block `thread` on ERESOURCE `r` as its build's kernel does.

        Where the layout types ExclusiveWaiters/SharedWaiters as pointers to KEVENT/KSEMAPHORE
        (7, 8.1) the waiter blocks on that shared object and the waiter count goes up.  Where
        they are untyped (10 19041, 11) the waiter blocks on a SynchronizationEvent on its own
        stack inside ExpWaitForResource, the resource's waiter field points into the waiter's
        stack and the waiter counts read 0 (as the published 19041 session shows); the
        resource address sits in the acquire frames, where ExAcquireResource*Lite keeps it.
        """
        field = "ExclusiveWaiters" if exclusive else "SharedWaiters"
        count = "NumberOfExclusiveWaiters" if exclusive else "NumberOfSharedWaiters"
        typed = self.layouts.layout("_ERESOURCE").field(field).type != "ptr:void"
        self.put("_ERESOURCE", r, ContentionCount=self._res(r, "ContentionCount") + 1)
        acquirer = "nt!ExAcquireResourceExclusiveLite" if exclusive else "nt!ExAcquireResourceSharedLite"
        if typed:
            obj = self._res(r, field)
            if not obj:
                obj = self.event(notification=False) if exclusive else self.semaphore()
                self.put("_ERESOURCE", r, **{field: obj})
            self.put("_ERESOURCE", r, **{count: self._res(r, count) + 1})
            self.stack_word(thread, acquirer, 0x30, r)
            self.wait_on(thread, [obj], "WrResource" if "WrResource" in self.layouts.enum("_KWAIT_REASON")
                         else "Executive")
        else:
            wsp = self.frame_sp(thread, "nt!ExpWaitForResource")
            ev = self.event(notification=False, address=wsp + 0x50)
            self.stack_word(thread, "nt!ExpWaitForResource", 0x20, r)
            self.stack_word(thread, acquirer, 0x30, r)
            self.put("_ERESOURCE", r, **{field: wsp + 0x40})
            self.wait_on(thread, [ev], "WrResource" if "WrResource" in self.layouts.enum("_KWAIT_REASON")
                         else "Executive")

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

    def _u64(self, a):
        return int.from_bytes(self.mem.read(a, 8), "little")

    def _u32(self, a):
        return int.from_bytes(self.mem.read(a, 4), "little")

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

    def _u8(self, a):
        return self.mem.read(a, 1)[0]

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

    # -- processors, bug check ------------------------------------------------------------------

    def processor(self, index, current_thread=0, idle_thread=0):
        prcb = self.alloc(self.size("_KPRCB"), align=PAGE)
        self.put("_KPRCB", prcb, Number=index, CurrentThread=current_thread, IdleThread=idle_thread)
        if self.has("_KDPC_DATA", "DpcListHead"):        # KiInitializePcr: empty doubly linked queues
            for i in range(2):
                self.list_init(prcb + self.off("_KPRCB", "DpcData") + i * self.size("_KDPC_DATA")
                               + self.off("_KDPC_DATA", "DpcListHead"))
        self.processors.append({"index": index, "prcb": "0x%x" % prcb})
        # what a debugger reads to find the processors: KiProcessorBlock[], KeNumberProcessors
        if self._processor_block is None:
            self._processor_block = self.global_("nt!KiProcessorBlock", 8 * MAX_PROCESSORS)
            self._processor_count = self.global_("nt!KeNumberProcessors", 4)
        self.u64(self._processor_block + 8 * index, prcb)
        self.u32(self._processor_count, len(self.processors))
        return prcb

    def set_current(self, cpu, thread, idle_thread=None):
        """What processor `cpu` runs now (and its idle thread)."""
        self.put("_KPRCB", self._prcb(cpu), CurrentThread=thread)
        if idle_thread is not None:
            self.put("_KPRCB", self._prcb(cpu), IdleThread=idle_thread)

    def _prcb(self, index):
        return int(next(p["prcb"] for p in self.processors if p["index"] == index), 16)

    def _dpc_data(self, index, threaded):
        return self._prcb(index) + self.off("_KPRCB", "DpcData") + (1 if threaded else 0) * self.size("_KDPC_DATA")

    def queue_dpc(self, cpu, routine, threaded=False, importance=1, context=0, number=0):
        """KeInsertQueueDpc: a KDPC for `routine` (module!Func[+off]) at the tail of CPU `cpu`'s
        normal or threaded queue, linked as this build links them (LIST_ENTRY on 7,
        SINGLE_LIST_ENTRY with a LastEntry on 8.1 and later).  Returns the KDPC address."""
        k = self.alloc(self.size("_KDPC"))
        data = self._dpc_data(cpu, threaded)
        typ = "ThreadedDpcObject" if threaded else "DpcObject"
        self.put("_KDPC", k, Type=self.enum("_KOBJECTS", typ), Importance=importance, Number=number,
                 DeferredRoutine=self.code(routine), DeferredContext=context, DpcData=data)
        link = k + self.off("_KDPC", "DpcListEntry")
        if self.has("_KDPC_DATA", "DpcListHead"):
            self.list_insert_tail(data + self.off("_KDPC_DATA", "DpcListHead"), link)
        else:
            head = data + self.off("_KDPC_DATA", "DpcList")
            last = self._u64(head + self.off("_KDPC_LIST", "LastEntry"))
            self.u64(last if last else head + self.off("_KDPC_LIST", "ListHead"), link)
            self.put("_KDPC_LIST", head, LastEntry=link)
        depth = self._u32(data + self.off("_KDPC_DATA", "DpcQueueDepth"))
        self.put("_KDPC_DATA", data, DpcQueueDepth=depth + 1,
                 DpcCount=self._u32(data + self.off("_KDPC_DATA", "DpcCount")) + 1)
        return k

    def dpc_watchdog(self, cpu, time_count=0, time_limit=0, watchdog_count=0, watchdog_period=0):
        """The PRCB's DPC watchdog counters, under whichever names this build gives them."""
        prcb = self._prcb(cpu)
        for names, v in ((("DpcTimeCount",), time_count), (("DpcTimeLimit", "DpcTimeLimitTicks"), time_limit),
                         (("DpcWatchdogCount",), watchdog_count),
                         (("DpcWatchdogPeriod", "DpcWatchdogPeriodTicks"), watchdog_period)):
            name = next(n for n in names if self.has("_KPRCB", n))
            self.put("_KPRCB", prcb, **{name: v})

    def running_dpc(self, cpu, routine, kdpc=0):
        """CPU `cpu` is running DPC `routine` now: DpcRoutineActive, and where the build has
        them CurrentDpcRoutine and the normal queue's ActiveDpc."""
        prcb = self._prcb(cpu)
        self.put("_KPRCB", prcb, DpcRoutineActive=1)
        if self.has("_KPRCB", "CurrentDpcRoutine"):
            self.put("_KPRCB", prcb, CurrentDpcRoutine=self.code(routine))
        if kdpc and self.has("_KDPC_DATA", "ActiveDpc"):
            self.put("_KDPC_DATA", self._dpc_data(cpu, False), ActiveDpc=kdpc)

    def timer_resolution(self, process, requested, smallest):
        """NtSetTimerResolution's record: `process` on nt!ExpTimerResolutionListHead with its
        Requested/SmallestTimerResolution (100 ns units)."""
        head = self.timer_res_head
        self.put("_EPROCESS", process, RequestedTimerResolution=requested, SmallestTimerResolution=smallest)
        self.list_insert_tail(head, process + self.off("_EPROCESS", "TimerResolutionLink"))

    def time_increment(self, current, minimum=5000):
        """The clock's current interval (KeTimeIncrement) and finest possible (KeMinimumIncrement)."""
        self.u32(self.symbols["nt!KeTimeIncrement"], current)
        self.u32(self.symbols["nt!KeMinimumIncrement"], minimum)

    def bugcheck(self, code, *args):
        args = list(args) + [0] * (4 - len(args))
        self.bugcheck_data = {"code": "0x%x" % code, "args": ["0x%x" % v for v in args]}
        a = self.global_("nt!KiBugCheckData", 5 * 8)
        for i, v in enumerate([code] + args):
            self.u64(a + 8 * i, v)

    # -- output -----------------------------------------------------------------------------

    def document(self, memory=True):
        return {
            "format": FORMAT, "version": VERSION, "build": self.build, "comment": self.comment,
            "modules": [{"name": m.name, "image": m.image, "base": "0x%x" % m.base, "size": "0x%x" % m.size}
                        for m in self.modules.values()],
            "symbols": {k: "0x%x" % v for k, v in sorted(self.symbols.items(), key=lambda kv: kv[1])},
            "memory": self.mem.ranges() if memory else [],
            "stacks": {"0x%x" % k: v for k, v in sorted(self.stacks.items())},
            "processors": self.processors,
            "bugcheck": self.bugcheck_data,
        }

    def target(self):
        """A MockTarget straight from memory (what save() then load() would give)."""
        return MockTarget(json.loads(json.dumps(self.document())), name="built:" + self.build)

    def fast_target(self, name=None):
        """The same MockTarget without the base64/JSON round trip of the memory (large
        generated targets: hundreds of MB would pass through JSON)."""
        doc = self.document(memory=False)
        ranges = []
        for base in sorted(self.mem.pages):
            if ranges and ranges[-1][0] + len(ranges[-1][1]) == base:
                ranges[-1][1].extend(self.mem.pages[base])
            else:
                ranges.append([base, bytearray(self.mem.pages[base])])
        return MockTarget(doc, name=name or "built:" + self.build,
                          memory=[(a, bytes(d)) for a, d in ranges])

    def save(self, path):
        save_document(self.document(), path)
