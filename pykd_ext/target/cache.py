"""A page cache between analyses and a backend.

Reads whole pages from the backend; when a page faults, falls back to reading just the bytes
asked for (a structure at the end of a valid region still reads).  Counts backend calls,
bytes and distinct pages, which the benchmark reads from `stats()`.  Symbol, type and stack
look-ups are memoised too: on a live target each is a debugger round trip.
"""
from ..errors import MemoryFault, SymbolNotFound
from .base import Target

PAGE = 0x1000


class Stats(object):
    __slots__ = ("backend_calls", "bytes", "pages", "faults", "symbol_calls", "stack_calls")

    def __init__(self):
        self.backend_calls = 0
        self.bytes = 0
        self.pages = set()
        self.faults = 0
        self.symbol_calls = 0
        self.stack_calls = 0

    def as_dict(self):
        return {"backend_calls": self.backend_calls, "bytes": self.bytes,
                "pages_touched": len(self.pages), "faults": self.faults,
                "symbol_calls": self.symbol_calls, "stack_calls": self.stack_calls}


class CachedTarget(Target):
    def __init__(self, backend, page_size=PAGE):
        self.backend = backend
        self.name = backend.name
        self.page_size = page_size
        self._pages = {}       # page base -> bytes (a whole page)
        self._bad = {}         # page base -> first faulting address seen in it
        self._pieces = {}      # (address, size) -> bytes read around a bad page
        self._symbols = {}
        self._describe = {}
        self._modules = {}
        self._stacks = {}
        self._layouts = None
        self._processors = None
        self._bugcheck = None
        self._bugcheck_read = False
        self.stats = Stats()

    # -- memory ------------------------------------------------------------------------------

    def _backend_read(self, address, size):
        self.stats.backend_calls += 1
        try:
            data = self.backend.read(address, size)
        except MemoryFault:
            self.stats.faults += 1
            raise
        self.stats.bytes += len(data)
        return data

    def _page(self, base):
        data = self._pages.get(base)
        if data is not None:
            return data
        if base in self._bad:
            return None
        self.stats.pages.add(base)
        try:
            data = self._backend_read(base, self.page_size)
        except MemoryFault as e:
            self._bad[base] = e.address
            return None
        self._pages[base] = data
        return data

    def read(self, address, size):
        if size <= 0:
            return b""
        if address < 0 or address + size > (1 << 64):
            raise MemoryFault(address, size)
        ps = self.page_size
        base = address - (address % ps)
        end = address + size
        if end <= base + ps:                      # the common case: inside one page
            page = self._page(base)
            if page is not None:
                off = address - base
                return page[off:off + size]
            return self._read_around_fault(address, size)
        chunks = []
        a = address
        while a < end:
            b = a - (a % ps)
            n = min(end, b + ps) - a
            page = self._page(b)
            if page is None:
                chunks.append(self._read_around_fault(a, n))
            else:
                chunks.append(page[a - b:a - b + n])
            a += n
        return b"".join(chunks)

    def _read_around_fault(self, address, size):
        """The page holding `address` faulted as a whole: try exactly the bytes asked for."""
        key = (address, size)
        data = self._pieces.get(key)
        if data is not None:
            return data
        self.stats.pages.add(address - (address % self.page_size))
        data = self._backend_read(address, size)
        self._pieces[key] = data
        return data

    # -- everything else, memoised -------------------------------------------------------------

    def symbol(self, name):
        if name not in self._symbols:
            self.stats.symbol_calls += 1
            try:
                self._symbols[name] = self.backend.symbol(name)
            except SymbolNotFound:
                self._symbols[name] = None
        addr = self._symbols[name]
        if addr is None:
            raise SymbolNotFound(name)
        return addr

    def describe(self, address):
        s = self._describe.get(address)
        if s is None:
            self.stats.symbol_calls += 1
            s = self._describe[address] = self.backend.describe(address)
        return s

    def module_at(self, address):
        if address not in self._modules:
            self.stats.symbol_calls += 1
            self._modules[address] = self.backend.module_at(address)
        return self._modules[address]

    def layouts(self):
        if self._layouts is None:
            self._layouts = self.backend.layouts()
        return self._layouts

    def processors(self):
        if self._processors is None:
            self._processors = self.backend.processors()
        return list(self._processors)

    def stack(self, thread):
        if thread not in self._stacks:
            self.stats.stack_calls += 1
            self._stacks[thread] = self.backend.stack(thread)
        return self._stacks[thread]

    def bugcheck(self):
        if not self._bugcheck_read:          # a debugger round trip on a live target: once
            self._bugcheck = self.backend.bugcheck()
            self._bugcheck_read = True
        return self._bugcheck
