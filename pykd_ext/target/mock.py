"""Mock targets: what a live target gives, as data.

A mock target file is JSON (optionally gzip) with a format name and version:

    {"format": "pykd_ext-mock-target", "version": 1,
     "build": "<shipped layout set>"  or  "layouts": {<inline LayoutSet>},
     "modules":    [{"name": "nt", "image": "ntkrnlmp.exe", "base": "0x...", "size": "0x..."}],
     "symbols":    {"nt!PsActiveProcessHead": "0x...", ...},
     "memory":     [{"address": "0x...", "data": "<base64>"}],
     "stacks":     {"0x<KTHREAD>": [{"ip": "0x...", "ret": "0x...", "sp": "0x...", "fp": "0x..."}]},
     "processors": [{"index": 0, "prcb": "0x..."}],
     "bugcheck":   null | {"code": "0x9f", "args": ["0x...", "0x...", "0x...", "0x..."]},
     "comment":    "free text for people"}

Recordings (`pykd-ext record`) add two optional keys: "origin", the name of the target recorded
(shown as the target's name, so a replay prints what the original run printed), and
"describe", {"0x<address>": "mod!sym+0xoff"}: the symbolizations the original target gave.

Loading validates everything and raises TargetFileError with one line naming the file and the
place that is wrong.  The analyses see only this: memory, symbols, layouts, stacks.
"""
import base64
import binascii
import bisect
import gzip
import json
import zlib

from ..errors import MemoryFault, SymbolNotFound, TargetFileError, TypeNotFound
from .base import BugCheck, Frame, Module, Processor, Target
from .layouts import LayoutSet, load_shipped

FORMAT = "pykd_ext-mock-target"
VERSION = 1


def _hex(v, where):
    if isinstance(v, str) and v.lower().startswith("0x"):
        try:
            return int(v, 16)
        except ValueError:
            pass
    raise ValueError('%s: expected a hex string like "0xfffff80000000000", got %s'
                     % (where, json.dumps(v)[:40]))


def _obj(v, where, kind=dict):
    if not isinstance(v, kind):
        raise ValueError("%s: expected %s, got %s" % (where, "an object" if kind is dict else "a list",
                                                     type(v).__name__))
    return v


def save_document(doc, path):
    """Write a mock target document: gzip (reproducible: no name, mtime 0) when `path` ends
    in .gz, else plain JSON.  OSError propagates."""
    data = json.dumps(doc, indent=None, separators=(",", ":")).encode("utf-8")
    if path.endswith(".gz"):
        with open(path, "wb") as f:
            with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0, compresslevel=9) as gz:
                gz.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)


class MockTarget(Target):
    def __init__(self, doc, name="mock target", memory=None):
        """`memory`: [(address, bytes)] given directly (a generated target), instead of the
        document's base64 "memory" ranges."""
        self.doc = doc
        self._parse(doc, memory)
        self.name = doc.get("origin") or name

    # -- loading --------------------------------------------------------------------------------

    @classmethod
    def load(cls, path):
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise TargetFileError("%s: cannot read: %s" % (path, e.strerror or e))
        try:
            if raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise TargetFileError("%s: gzip data is truncated or corrupt (%s)" % (path, e))
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise TargetFileError("%s: not valid JSON (%s): truncated or not a mock target" % (path, e))
        try:
            return cls(doc, name=path)
        except ValueError as e:
            raise TargetFileError("%s: %s" % (path, e))

    def _parse(self, doc, memory=None):
        _obj(doc, "top level")
        if doc.get("format") != FORMAT:
            raise ValueError('format: expected "%s", got %s' % (FORMAT, json.dumps(doc.get("format"))))
        if doc.get("version") != VERSION:
            raise ValueError("version: this pykd_ext reads version %d, the file has %s"
                             % (VERSION, json.dumps(doc.get("version"))))
        if "layouts" in doc:
            try:
                self._layouts = LayoutSet.from_json(_obj(doc["layouts"], "layouts"))
            except (KeyError, TypeError) as e:
                raise ValueError("layouts: malformed (%s)" % e)
        elif "build" in doc:
            try:
                self._layouts = load_shipped(doc["build"])
            except TypeNotFound as e:
                raise ValueError("build: no %s" % e.name)
        else:
            raise ValueError('neither "build" nor "layouts" is given')

        self.modules = []
        for i, m in enumerate(_obj(doc.get("modules", []), "modules", list)):
            w = "modules[%d]" % i
            _obj(m, w)
            if not isinstance(m.get("name"), str):
                raise ValueError("%s.name: expected a string" % w)
            base, size = _hex(m.get("base"), w + ".base"), _hex(m.get("size"), w + ".size")
            self.modules.append(Module(m["name"], m.get("image", m["name"]), base, base + size))
        self.modules.sort(key=lambda m: m.base)
        self._mod_starts = [m.base for m in self.modules]

        self.symbols = {}
        for k, v in _obj(doc.get("symbols", {}), "symbols").items():
            if "!" not in k:
                raise ValueError("symbols: %s: expected module!name" % json.dumps(k))
            self.symbols[k.lower()] = _hex(v, "symbols[%s]" % json.dumps(k))
        self._by_addr = sorted((self.symbols[n.lower()], n) for n in doc.get("symbols", {}))
        self._sym_addrs = [a for a, _ in self._by_addr]

        ranges = [(a, a + len(d), d) for a, d in memory or ()]
        for i, r in enumerate(_obj(doc.get("memory", []), "memory", list)):
            w = "memory[%d]" % i
            _obj(r, w)
            start = _hex(r.get("address"), w + ".address")
            try:
                data = base64.b64decode(r.get("data", ""), validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise ValueError("%s.data: not base64" % w)
            ranges.append((start, start + len(data), data))
        ranges.sort()
        for a, b in zip(ranges, ranges[1:]):
            if b[0] < a[1]:
                raise ValueError("memory: ranges at 0x%x and 0x%x overlap" % (a[0], b[0]))
        self._ranges = ranges
        self._starts = [r[0] for r in ranges]

        self._stacks = {}
        for k, frames in _obj(doc.get("stacks", {}), "stacks").items():
            t = _hex(k, "stacks key %s" % json.dumps(k))
            out = []
            for j, f in enumerate(_obj(frames, "stacks[%s]" % k, list)):
                w = "stacks[%s][%d]" % (k, j)
                _obj(f, w)
                out.append(Frame(_hex(f.get("ip"), w + ".ip"), _hex(f.get("ret", "0x0"), w + ".ret"),
                                 _hex(f.get("sp", "0x0"), w + ".sp"), _hex(f.get("fp", "0x0"), w + ".fp")))
            self._stacks[t] = out

        self._processors = []
        for i, p in enumerate(_obj(doc.get("processors", []), "processors", list)):
            w = "processors[%d]" % i
            _obj(p, w)
            if not isinstance(p.get("index"), int):
                raise ValueError("%s.index: expected an integer" % w)
            self._processors.append(Processor(p["index"], _hex(p.get("prcb"), w + ".prcb")))

        origin = doc.get("origin")
        if origin is not None and not isinstance(origin, str):
            raise ValueError("origin: expected a string")
        self._described = {}
        for k, v in _obj(doc.get("describe", {}), "describe").items():
            if not isinstance(v, str):
                raise ValueError("describe[%s]: expected a string" % json.dumps(k))
            self._described[_hex(k, "describe key %s" % json.dumps(k))] = v

        bc = doc.get("bugcheck")
        self._bugcheck = None
        if bc is not None:
            _obj(bc, "bugcheck")
            args = _obj(bc.get("args"), "bugcheck.args", list)
            if len(args) != 4:
                raise ValueError("bugcheck.args: expected 4 arguments, got %d" % len(args))
            self._bugcheck = BugCheck(_hex(bc.get("code"), "bugcheck.code"),
                                      [_hex(a, "bugcheck.args[%d]" % i) for i, a in enumerate(args)])

    # -- the protocol ---------------------------------------------------------------------------

    def read(self, address, size):
        out = []
        a, end = address, address + size
        while a < end:
            i = bisect.bisect_right(self._starts, a) - 1
            if i < 0 or a >= self._ranges[i][1]:
                raise MemoryFault(a, size)
            start, stop, data = self._ranges[i]
            n = min(end, stop) - a
            out.append(data[a - start:a - start + n])
            a += n
        return b"".join(out)

    def symbol(self, name):
        if "!" not in name:
            name = "nt!" + name
        try:
            return self.symbols[name.lower()]
        except KeyError:
            raise SymbolNotFound(name)

    def module_at(self, address):
        i = bisect.bisect_right(self._mod_starts, address) - 1
        if i >= 0 and address < self.modules[i].end:
            return self.modules[i]
        return None

    def describe(self, address):
        s = self._described.get(address)
        if s is not None:
            return s
        m = self.module_at(address)
        if m is None:
            return "0x%x" % address
        i = bisect.bisect_right(self._sym_addrs, address) - 1
        if i >= 0:
            a, n = self._by_addr[i]
            if a >= m.base and n.split("!")[0].lower() == m.name.lower():
                return n if a == address else "%s+0x%x" % (n, address - a)
        return "%s+0x%x" % (m.name, address - m.base)

    def layouts(self):
        return self._layouts

    def processors(self):
        return list(self._processors)

    def stack(self, thread):
        return list(self._stacks.get(thread, []))

    def bugcheck(self):
        return self._bugcheck
