"""Symbolised kernel stacks and the driver to look at on them."""

#: module names that are the kernel itself, never the driver to blame
KERNEL_MODULES = frozenset(["nt", "ntoskrnl", "ntkrnlmp", "ntkrnlpa", "ntkrpamp", "hal", "halmacpi"])


class FrameInfo(object):
    __slots__ = ("ip", "sp", "symbol", "module")

    def __init__(self, ip, sp, symbol, module):
        self.ip, self.sp, self.symbol, self.module = ip, sp, symbol, module

    @property
    def function(self):
        """`module!name` without the displacement (None when there is no symbol)."""
        if "!" not in self.symbol:
            return None
        return self.symbol.split("+", 1)[0]

    @property
    def is_kernel(self):
        return self.module is not None and self.module.name.lower() in KERNEL_MODULES


# Frames symbolised per stack, innermost first.  A 24 KB x64 kernel stack holds a few hundred
# frames at the very most and every analysis looks at the innermost ones; WinDbg's own `k`
# stops at 256 (.kframes).  A corrupt or forged stack costs a describe() per frame.
MAX_FRAMES = 256


def frames(target, thread_address):
    out = []
    for f in target.stack(thread_address)[:MAX_FRAMES]:
        out.append(FrameInfo(f.ip, f.sp, target.describe(f.ip), target.module_at(f.ip)))
    return out


#: Microsoft's driver frameworks and port/class libraries: they call their client drivers'
#: callbacks (KMDF's Wdf01000 and its loader, NDIS miniport/filter callbacks, Storport/ATAport/
#: SCSIport miniports, the Filter Manager's minifilters, PortCls and Kernel Streaming
#: minidrivers, UCX client drivers, the disk class library, HID and USB generic parents).  A
#: framework frame innermost on a stack is usually waiting or working on its client's behalf:
#: the client driver on the same stack is the driver to look at.
FRAMEWORK_MODULES = frozenset([
    "wdf01000", "wdfldr", "ndis", "storport", "ataport", "scsiport", "fltmgr", "portcls", "ks",
    "ucx01000", "classpnp", "hidclass"])


def is_framework(frame):
    return frame.module is not None and frame.module.name.lower() in FRAMEWORK_MODULES


def first_driver_frame(frame_list):
    """The driver to look at on a stack (innermost first): the first frame in a module that is
    neither the kernel nor a framework, else the first framework frame, else None."""
    fallback = None
    for f in frame_list:
        if f.module is None or f.is_kernel:
            continue
        if not is_framework(f):
            return f
        if fallback is None:
            fallback = f
    return fallback
