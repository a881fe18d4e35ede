"""A page cache between analyses and a backend.

Reads whole pages from the backend; when a page faults, falls back to reading just the bytes
asked for (a structure at the end of a valid region still reads).  Counts backend calls,
bytes and distinct pages, which the benchmark reads from `stats`.  Symbol, type and stack
look-ups are memoised too: on a live target each is a debugger round trip.

Read-ahead: a miss that continues a run of misses (the page just after one read before,
or a page or two further: a walk over records laid out one after another, a few per
page or one per page) reads the next pages in the same call, the window doubling up to
`read_ahead` pages while the run goes on; any other miss reads one page.  Up to eight runs
are followed at once (a walk over processes interleaved with walks over their threads).
A dump pays per call, not per byte, so runs cost a fraction of the calls; a link pays
per page too, and a window only grows while its pages are being used.  One read that
covers several missing pages (a structure across a page boundary, a stack range) asks for
them in one call, read-ahead or not.

Read units under a page (`page_size`, `--read-unit`): on a link where bytes cost more than
round trips -- a 115200-baud serial cable moves 23 bytes in the time of one round trip --
whole pages are the wrong unit (a 4-field walk over processes would move 4 KB a process).
Under a page, the views read field by field, nothing is read ahead, and each unit is still
read once: the naive reader's bytes without its repeats.
"""
import math
import time

from ..errors import MemoryFault, SymbolNotFound
from .base import Target, processors_in_memory

PAGE = 0x1000
MIN_UNIT = 16              # the smallest read unit: a few fields
READ_AHEAD = 16            # pages, at most, in one read of a run
STREAMS = 8                # runs followed at once
SLOW_SAMPLE = 8            # page reads timed before judging the link
SLOW_PAGE_S = 0.05         # a page read slower than this, typically: bytes cost more than round trips
# Reads one command may make of the cache before every further read faults (MemoryFault):
# a pathological target (lists of copies of records, loops through other objects) then ends
# in partial results and a warning, not minutes of work.  The 20,000-lock benchmark target
# needs 93,000 reads for powerirps, its heaviest command; 100,000 locks about five times that;
# a read costs about 10 us of analysis, so the budget is about 10 s of work.
READ_BUDGET = 1000000


def unit_for_link(latency_s, bytes_per_s):
    """The read unit that suits a link: its bandwidth-delay product (the bytes that cost as
    much as a round trip) to the nearest power of two, from MIN_UNIT to a page.  KDNET
    (1 ms, 10 MB/s) and dumps: a page; a 115200-baud serial cable (2 ms, 11,520 B/s): 32."""
    bdp = latency_s * bytes_per_s
    if bdp <= MIN_UNIT:
        return MIN_UNIT
    if bdp >= PAGE:
        return PAGE
    return 1 << int(round(math.log2(bdp)))


def check_unit(unit):
    """A read unit is a power of two from MIN_UNIT to a page; ValueError says what is wrong."""
    if unit < MIN_UNIT or unit > PAGE or unit & (unit - 1):
        raise ValueError("a read unit is a power of two from %d to %d bytes, not %d" % (MIN_UNIT, PAGE, unit))
    return unit


class Stats(object):
    __slots__ = ("backend_calls", "bytes", "pages", "pages_read", "faults", "symbol_calls", "stack_calls")

    def __init__(self):
        self.backend_calls = 0
        self.bytes = 0
        self.pages = set()          # distinct pages the analyses read from (touched)
        self.pages_read = 0         # pages moved from the backend (read-ahead included)
        self.faults = 0
        self.symbol_calls = 0
        self.stack_calls = 0

    def as_dict(self):
        return {"backend_calls": self.backend_calls, "bytes": self.bytes,
                "pages_touched": len(self.pages), "pages_read": self.pages_read, "faults": self.faults,
                "symbol_calls": self.symbol_calls, "stack_calls": self.stack_calls}


class CachedTarget(Target):
    #: called once with a one-line hint when page reads on a live target prove slow (None: silent)
    notice = None
    clock = staticmethod(time.perf_counter)

    def __init__(self, backend, page_size=PAGE, read_ahead=READ_AHEAD, read_budget=READ_BUDGET):
        """`page_size`: the read unit.  Under a page (a link whose bandwidth costs more than its
        round trips: unit_for_link) the views read field by field and nothing is read ahead,
        so only the bytes asked for, rounded to units, cross the link, each once."""
        self.backend = backend
        self.name = backend.name
        self.page_size = check_unit(page_size)
        self.read_ahead = max(1, read_ahead)
        if page_size < PAGE:
            self.whole_structures = False
            self.read_ahead = 1
        self._pages = {}       # page base -> bytes (a whole page)
        self._ahead = set()    # pages read ahead and not yet touched
        self._runs = []        # [end of the last read, its window in pages], latest first
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
        self._page_times = []  # seconds per page of the first page reads (a live target only)
        self.live = getattr(backend, "live", False)
        self.stats = Stats()
        self.read_budget = read_budget
        self.reads = 0                 # reads asked of the cache, against read_budget
        self.budget_exhausted = False  # True once a read was refused for the budget

    # -- memory ------------------------------------------------------------------------------

    def _backend_read(self, address, size):
        self.stats.backend_calls += 1
        if self.progress is not None:
            self.progress.tick(len(self.stats.pages))
        timed = self.live and self.notice is not None and self._page_times is not None and size >= PAGE
        if timed:
            t0 = self.clock()
        try:
            data = self.backend.read(address, size)
        except MemoryFault:
            self.stats.faults += 1
            raise
        self.stats.bytes += len(data)
        if timed:
            self._judge_link((self.clock() - t0) * PAGE / size)
        return data

    def _judge_link(self, seconds_per_page):
        """After SLOW_SAMPLE page reads of a live target: if the typical one took longer than
        SLOW_PAGE_S, say (once) that a smaller read unit would move fewer bytes."""
        self._page_times.append(seconds_per_page)
        if len(self._page_times) < SLOW_SAMPLE:
            return
        typical = sorted(self._page_times)[len(self._page_times) // 2]
        self._page_times = None                  # judged: never again
        if typical > SLOW_PAGE_S:
            self.notice("page reads take %.0f ms each on this live target: bytes cost more than round trips "
                        "here, as on a serial cable; --read-unit 32 reads fields instead of pages "
                        "(README: Cost)" % (typical * 1000))

    def _page(self, base, ahead=True, span=1):
        data = self._pages.get(base)
        if data is not None:
            if self._ahead and base in self._ahead:
                self._ahead.discard(base)
                self.stats.pages.add(base)
            return data
        if base in self._bad:
            return None
        self.stats.pages.add(base)
        return self._fetch(base, ahead, span)

    def _fetch(self, base, ahead=True, span=1):
        """Read the page at `base`, and the next ones too when the miss continues a run
        (`ahead` False: the rest of one read that spans pages, which says nothing of a run);
        `span`: the pages the read asking for it covers from `base` on, wanted in this same
        call."""
        ps = self.page_size
        window = grown = 1
        for i, (end, w) in enumerate(self._runs):
            if end <= base < end + max(w, 2) * ps:
                window, grown = w, min(2 * w, self.read_ahead)
                del self._runs[i]
                break
        if ahead:
            window = grown
        want = max(window if ahead else 1, span)
        n = 1
        while n < want and base + n * ps not in self._pages and base + n * ps not in self._bad:
            n += 1
        if n > 1:
            try:
                data = self._backend_read(base, n * ps)
            except MemoryFault:
                n = window = 1            # part of the run is not mapped: read the page alone
            else:
                for i in range(n):
                    self._pages[base + i * ps] = data[i * ps:(i + 1) * ps]
                    if i:
                        self._ahead.add(base + i * ps)
                self.stats.pages_read += n
        if n == 1:
            try:
                data = self._backend_read(base, ps)
            except MemoryFault as e:
                self._bad[base] = e.address
                self._note_run(base + ps, 1)
                return None
            self._pages[base] = data
            self.stats.pages_read += 1
        self._note_run(base + n * ps, window)
        return self._pages[base]

    def _note_run(self, end, window):
        """The latest read ended at `end` with this window: the run most likely to go on."""
        self._runs.insert(0, [end, window])
        del self._runs[STREAMS:]

    def read(self, address, size):
        self.reads += 1
        if self.reads > self.read_budget:
            self.budget_exhausted = True
            raise MemoryFault(address, size, "memory at 0x%x not read: the read budget (%d reads) is spent"
                              % (address, self.read_budget))
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
            # a structure across pages: its missing pages, from the first one, in one call
            page = self._page(b, a == address, (end - b + ps - 1) // ps)
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
        """KiProcessorBlock read through this cache (target.base.processors_in_memory), once; the
        backend's own list where the symbols are missing (a recording keeps the list it saw)."""
        if self._processors is None:
            procs = processors_in_memory(self)
            self._processors = procs if procs is not None else self.backend.processors()
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
