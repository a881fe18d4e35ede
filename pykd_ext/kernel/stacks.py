"""Symbolised kernel stacks and the driver to look at on them."""
import functools
import json
import os

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


@functools.lru_cache(maxsize=None)
def framework_modules():
    """The framework, port/class library and class extension modules, from the data file
    pykd_ext/data/frameworks.json (each with what it is and where Microsoft documents it): a
    frame of theirs on a stack is usually working or waiting for a client driver, and the client
    on the same stack is the driver to look at.  Read on first use, not at import."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "frameworks.json")
    with open(path, encoding="utf-8") as f:
        return frozenset(m["module"].lower() for m in json.load(f)["modules"])


def is_framework(frame):
    return frame.module is not None and frame.module.name.lower() in framework_modules()


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
