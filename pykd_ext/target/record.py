"""Recording: wrap any target and keep exactly what the analyses asked of it.

RecordingTarget sits between the analyses and the page cache, so it sees the byte ranges the
analyses read (not the whole pages the cache fetched), the symbols looked up, the addresses
described, the modules, the layouts and enums used, the stacks unwound, the processors and the
bug check.  `document()` turns that into a mock target (target/mock.py) whose replay gives the
same answers to the same questions, hence the same command output (but for the target's name,
which names the recording file and what it was recorded from).

Faults are not recorded as data: a range that faulted is simply absent, so it faults again.
"""
import base64

from .base import Target
from .layouts import LayoutSet
from .mock import FORMAT, VERSION


class RecordingLayouts(LayoutSet):
    """The inner LayoutSet, noting every type and enum asked for."""

    def __init__(self, inner):
        LayoutSet.__init__(self, inner.build, inner.pointer_size, {}, {}, inner.base_types, {})
        self.inner = inner
        self.used_types = {}
        self.used_enums = {}

    def layout(self, name):
        t = self.inner.layout(name)
        self.used_types[name.split("!")[-1]] = t
        return t

    def enum(self, name):
        e = self.inner.enum(name)
        self.used_enums[name.split("!")[-1]] = dict(e)
        return e

    def to_json(self):
        return {"build": self.build, "pointer_size": self.pointer_size,
                "structs": {n: t.to_json() for n, t in sorted(self.used_types.items())},
                "enums": {n: {"constants": c} for n, c in sorted(self.used_enums.items())},
                "base_types": self.base_types, "aliases": {}}


class RecordingTarget(Target):
    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self._reads = []          # (address, bytes) of every successful read
        self._symbols = {}
        self._describe = {}
        self._modules = {}
        self._stacks = {}
        self._processors = None
        self._bugcheck = None
        self._bugcheck_asked = False
        self._layouts = None
        self.interrupted = None   # why the first analysis that caught a break stopped (note_interrupt)

    def note_interrupt(self, reason):
        """An analysis stopped on a break and reports what it read before (progress.stopped):
        the recording is partial from here on."""
        if self.interrupted is None:
            self.interrupted = reason

    def read(self, address, size):
        data = self.inner.read(address, size)
        if data:
            self._reads.append((address, data))
        return data

    def symbol(self, name):
        addr = self.inner.symbol(name)     # SymbolNotFound propagates: absent from the recording too
        self._symbols[name if "!" in name else "nt!" + name] = addr
        return addr

    def describe(self, address):
        s = self.inner.describe(address)
        self._describe[address] = s
        return s

    def module_at(self, address):
        m = self.inner.module_at(address)
        if m is not None:
            self._modules[m.base] = m
        return m

    def layouts(self):
        if self._layouts is None:
            self._layouts = RecordingLayouts(self.inner.layouts())
        return self._layouts

    def processors(self):
        p = self.inner.processors()
        self._processors = [(x.index, x.prcb) for x in p]
        return p

    def stack(self, thread):
        frames = self.inner.stack(thread)
        self._stacks[thread] = frames
        return frames

    def bugcheck(self):
        bc = self.inner.bugcheck()
        self._bugcheck_asked = True
        self._bugcheck = bc
        return bc

    # -- the recording ---------------------------------------------------------------------------

    def ranges(self):
        """The bytes read, merged into non-overlapping runs: [(address, bytes)]."""
        out = []
        for addr, data in sorted(self._reads, key=lambda r: r[0]):
            if out and addr <= out[-1][0] + len(out[-1][1]):
                start, buf = out[-1]
                end = addr + len(data)
                if end > start + len(buf):
                    buf.extend(data[start + len(buf) - addr:])
            else:
                out.append((addr, bytearray(data)))
        return [(a, bytes(b)) for a, b in out]

    def document(self, comment="", commands=None, partial=None):
        """The recording as a mock target document; `partial`: why it holds less than its
        commands would have read (it is kept in the file, and every replay says so)."""
        if not self._bugcheck_asked:
            self.bugcheck()        # five numbers that say what the target is: always kept
        mem = self.ranges()
        doc = {
            "format": FORMAT, "version": VERSION, "origin": self.name, "comment": comment,
            "recorded_commands": list(commands) if commands is not None else None,
            "partial": partial,
            "layouts": self.layouts().to_json(),
            "modules": [{"name": m.name, "image": m.image, "base": "0x%x" % m.base,
                         "size": "0x%x" % (m.end - m.base)} for _, m in sorted(self._modules.items())],
            "symbols": {k: "0x%x" % v for k, v in sorted(self._symbols.items())},
            "describe": {"0x%x" % k: v for k, v in sorted(self._describe.items())},
            "memory": [{"address": "0x%x" % a, "data": base64.b64encode(d).decode("ascii")} for a, d in mem],
            "stacks": {"0x%x" % t: [{"ip": "0x%x" % f.ip, "ret": "0x%x" % f.ret, "sp": "0x%x" % f.sp,
                                     "fp": "0x%x" % f.fp} for f in frames]
                       for t, frames in sorted(self._stacks.items())},
            "processors": [{"index": i, "prcb": "0x%x" % p} for i, p in self._processors or []],
            "bugcheck": None if self._bugcheck is None else {
                "code": "0x%x" % self._bugcheck.code, "args": ["0x%x" % a for a in self._bugcheck.args]},
        }
        return doc

    def summary(self):
        mem = self.ranges()
        return {"ranges": len(mem), "bytes": sum(len(d) for _, d in mem), "symbols": len(self._symbols),
                "described": len(self._describe), "modules": len(self._modules),
                "types": len(self.layouts().used_types), "enums": len(self.layouts().used_enums),
                "stacks": len(self._stacks), "processors": len(self._processors or []),
                "bugcheck": self._bugcheck is not None}

