"""The one read-only protocol every analysis uses.

There is deliberately no write operation: these commands run against production kernels.
A backend implements the `_`-less methods below; analyses reach it only through a
CachedTarget (target/cache.py), which adds whole-page caching and counters.
"""
import struct

from ..errors import MemoryFault, SymbolNotFound


class Frame(object):
    """One stack frame: instruction pointer, return address, stack and frame pointers."""
    __slots__ = ("ip", "ret", "sp", "fp")

    def __init__(self, ip, ret=0, sp=0, fp=0):
        self.ip, self.ret, self.sp, self.fp = ip, ret, sp, fp

    def __repr__(self):
        return "Frame(ip=0x%x, sp=0x%x)" % (self.ip, self.sp)


class Module(object):
    """A loaded image: short name (as in `name!symbol`), image file name, [base, end)."""
    __slots__ = ("name", "image", "base", "end")

    def __init__(self, name, image, base, end):
        self.name, self.image, self.base, self.end = name, image, base, end

    def __repr__(self):
        return "Module(%s, 0x%x-0x%x)" % (self.name, self.base, self.end)


class Processor(object):
    __slots__ = ("index", "prcb")

    def __init__(self, index, prcb):
        self.index, self.prcb = index, prcb


#: Bug check codes by name (Microsoft's bug check and kernel live dump code references), for
#: the codes these commands read or route.
BUGCHECK_NAMES = {
    0x9F: "DRIVER_POWER_STATE_FAILURE", 0x133: "DPC_WATCHDOG_VIOLATION", 0x101: "CLOCK_WATCHDOG_TIMEOUT",
    0x13C: "INVALID_IO_BOOST_STATE", 0x162: "KERNEL_AUTO_BOOST_INVALID_LOCK_RELEASE",
    0xA: "IRQL_NOT_LESS_OR_EQUAL", 0xD1: "DRIVER_IRQL_NOT_LESS_OR_EQUAL",
    0xC4: "DRIVER_VERIFIER_DETECTED_VIOLATION", 0xE2: "MANUALLY_INITIATED_CRASH",
    0x7E: "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED", 0x1000007E: "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M",
    0x1CC: "EXRESOURCE_TIMEOUT_LIVEDUMP", 0x1A3: "CALL_HAS_NOT_RETURNED_WATCHDOG_TIMEOUT_LIVEDUMP",
    0x1D4: "UCMUCSI_LIVEDUMP", 0x15C: "PDC_WATCHDOG_TIMEOUT_LIVEDUMP",
    0x166: "CLUSTER_RESOURCE_CALL_TIMEOUT_LIVEDUMP", 0x198: "UFX_LIVEDUMP"}

#: Codes Microsoft lists as live dumps ("can never be used for a real bug check; it is used to
#: identify live dumps"): the system kept running while its memory was captured.
LIVE_DUMPS = frozenset((0x1CC, 0x1A3, 0x1D4, 0x15C, 0x166, 0x198))


class BugCheck(object):
    __slots__ = ("code", "args")

    def __init__(self, code, args):
        self.code = code
        self.args = tuple(args)

    def __repr__(self):
        return "BugCheck(0x%x, %s)" % (self.code, ", ".join("0x%x" % a for a in self.args))


#: Windows' limit on logical processors (KiProcessorBlock never holds more)
MAX_PROCESSORS = 2048


def processors_in_memory(target):
    """The processors as the kernel lists them: KiProcessorBlock[0 .. KeNumberProcessors), each
    the address of a KPRCB, read through `target` (the page cache, so the reads are counted and
    shared with what reads the PRCBs next).  None when the symbols are missing or unreadable.
    KeNumberProcessors is a one-byte CCHAR on some builds: a count that is no count is masked."""
    ps = target.pointer_size
    fmt = "<Q" if ps == 8 else "<I"
    try:
        n = struct.unpack("<I", target.read(target.symbol("nt!KeNumberProcessors"), 4))[0]
        if not 0 < n <= MAX_PROCESSORS:
            n &= 0xff
        raw = target.read(target.symbol("nt!KiProcessorBlock"), n * ps)
    except (SymbolNotFound, MemoryFault):
        return None
    out = []
    for i in range(n):
        prcb = struct.unpack_from(fmt, raw, i * ps)[0]
        if not prcb:
            break
        out.append(Processor(i, prcb))
    return out


class Target(object):
    """Abstract backend.  All addresses are ints; all reads are of virtual memory."""

    #: a short description of where the data comes from ("mock target F", "dump F", ...)
    name = "target"

    #: views read a whole structure in one read (False: field by field, as pykd's typedVar)
    whole_structures = True

    #: a progress reporter (pykd_ext.progress.Progress) long scans report to, or None
    progress = None

    #: a live kernel behind a debugger link (each read a round trip), not a dump or a file
    live = False

    def read(self, address, size):
        """`size` bytes at `address`, or MemoryFault carrying the first bad address."""
        raise NotImplementedError

    def symbol(self, name):
        """Address of `module!name`; SymbolNotFound if the target has none."""
        raise NotImplementedError

    def describe(self, address):
        """`module!symbol+0xoff`, else `module+0xoff`, else `0x...`: never raises."""
        raise NotImplementedError

    def module_at(self, address):
        """The Module whose image holds `address`, or None."""
        raise NotImplementedError

    def layouts(self):
        """The LayoutSet of this target's kernel build."""
        raise NotImplementedError

    def processors(self):
        """The processors: list of Processor(index, prcb address)."""
        raise NotImplementedError

    def stack(self, thread):
        """Frames of the kernel thread at `thread`, innermost first ([] when unknown)."""
        raise NotImplementedError

    def bugcheck(self):
        """BugCheck(code, args) when the target bug checked, else None."""
        raise NotImplementedError

    @property
    def pointer_size(self):
        return self.layouts().pointer_size


def wrapped(target, attribute, depth=8):
    """`attribute` of `target` or of the backend it wraps (the page cache's `backend`, a
    recording's or a simulated link's `inner`/`backend`), the outermost that has it; None."""
    for _ in range(depth):
        if target is None:
            return None
        value = getattr(target, attribute, None)
        if value is not None:
            return value
        target = getattr(target, "backend", None) or getattr(target, "inner", None)
    return None
