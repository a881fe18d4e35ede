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


def first_driver_frame(frame_list):
    """The first frame (innermost first) in a module that is not the kernel, or None."""
    for f in frame_list:
        if f.module is not None and not f.is_kernel:
            return f
    return None
