"""Sparse memory, and the builder's fixed address map and bookkeeping records."""
import base64


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
