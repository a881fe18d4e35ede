"""The builder's foundation: raw memory, layouts, symbols, lists and output."""
import json
import struct

from ...target.mock import FORMAT, VERSION, MockTarget, save_document
from .memory import FUNC_SLOT, POOL_BASE, SCATTER_SPAN, TICK_100NS, ModuleInfo


class BuilderBase(object):
    """Raw memory, layouts, modules and symbols, lists, and the mock target file: what
    every room of the builder writes with."""

    # -- raw memory ------------------------------------------------------------------------

    def u8(self, a, v):
        self.mem.write(a, struct.pack("<B", v & 0xff))

    def u16(self, a, v):
        self.mem.write(a, struct.pack("<H", v & 0xffff))

    def u32(self, a, v):
        self.mem.write(a, struct.pack("<I", v & 0xffffffff))

    def u64(self, a, v):
        self.mem.write(a, struct.pack("<Q", v & 0xffffffffffffffff))

    def alloc_pool(self, size, tag, pool_type=0):
        """ExAllocatePoolWithTag for a small block (ReactOS ntoskrnl/mm/ARM3/expool.c): the
        x64 POOL_HEADER in front of the block -- BlockSize (header and block, 16-byte units)
        at +2, PoolType + 1 at +3, PoolTag at +4 -- and the block's address returned."""
        units = (0x10 + size + 0xf) // 0x10
        h = self.alloc(units * 0x10)
        self.u8(h + 2, units)
        self.u8(h + 3, pool_type + 1)
        self.mem.write(h + 4, tag.encode("ascii")[:4].ljust(4, b" "))
        return h + 0x10

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

    def set_tick(self, tick, torn=False):
        """The clock at `tick` ticks since boot, written as the 64-bit KeUpdateSystemTime
        writes the shared data (NT 5.2 amd64/ia64 KeUpdateSystemTime, as in the WRK era:
        `InterruptTime.High2Time = high; *(ULONG64 *)&InterruptTime = time;` -- High2Time
        first, then LowPart and High1Time in one 64-bit store; then for the tick count
        `TickCount.High2Time = high; TickCountQuad = count;`).  On x86 the same routine
        stores High2Time, LowPart, High1Time, in that order.  (ReactOS ntoskrnl/ke/time.c
        KiWriteSystemTime orders it the other way round: the 64-bit store, then High2Time.)
        InterruptTime is a `_KSYSTEM_TIME` {LowPart, High1Time, High2Time} at +0x8 and counts
        100 ns units; TickCount is one at +0x320.

        torn=True leaves the snapshot between the two stores of InterruptTime: High2Time
        already new, LowPart and High1Time still the previous value (a torn read for a
        reader that checks High1Time == High2Time, as KeQueryInterruptTime does)."""
        sd = self._shared
        time = tick * TICK_100NS
        self.u32(sd + 4, 0x0fa00000)                          # TickCountMultiplier
        self.u32(sd + 0x8 + 8, time >> 32)                    # InterruptTime.High2Time
        if not torn:
            self.u64(sd + 0x8, time)                          # InterruptTime.LowPart, High1Time
        self.u32(sd + 0x320 + 8, tick >> 32)                  # TickCount.High2Time
        self.u64(sd + 0x320, tick)                            # TickCountQuad
        self.tick = tick

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
        """`nt!KiSwapContext+0x7a` or `ZTEusbnet+0x35dd` -> an instruction address; a bare
        `0xfffff88001234567` is taken as it is (code in no loaded module)."""
        if spec.lower().startswith("0x"):
            return int(spec, 16)
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

    # -- reading back what was written --------------------------------------------------

    def _u64(self, a):
        return int.from_bytes(self.mem.read(a, 8), "little")

    def _u32(self, a):
        return int.from_bytes(self.mem.read(a, 4), "little")

    def _u8(self, a):
        return self.mem.read(a, 1)[0]

    # -- output -----------------------------------------------------------------------------

    def document(self, memory=True):
        indexes = sorted(p["index"] for p in self.processors)
        if indexes != list(range(len(indexes))):
            # KiProcessorBlock holds processors 0 .. KeNumberProcessors-1: a gap is no machine
            raise ValueError("processors %s: a machine numbers its processors 0..%d" % (indexes, len(indexes) - 1))
        return {
            "format": FORMAT, "version": VERSION, "build": self.build, "comment": self.comment,
            "modules": [{"name": m.name, "image": m.image, "base": "0x%x" % m.base, "size": "0x%x" % m.size}
                        for m in self.modules.values()],
            "symbols": {k: "0x%x" % v for k, v in sorted(self.symbols.items(), key=lambda kv: kv[1])},
            "memory": self.mem.ranges() if memory else [],
            "stacks": {"0x%x" % k: v for k, v in sorted(self.stacks.items())},
            "processors": sorted(self.processors, key=lambda p: p["index"]),     # KiProcessorBlock order
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

