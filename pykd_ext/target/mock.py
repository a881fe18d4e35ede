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

Recordings (`pykd-ext record`) add optional keys: "origin", the name of the target recorded
(a replay is named "<file> (recorded from <origin>)" in its title and JSON "target"), and
"describe", {"0x<address>": "mod!sym+0xoff"}: the symbolizations the original target gave.
They also say "recorded_commands", the commands recorded (another command is refused: it
would get confident empty answers from memory never read), and "partial": null, or why the
recording holds less than those commands read ("interrupted during deadlock (Ctrl+C)"): every
replay of it then warns that an empty answer from it means nothing.

Loading validates everything and raises TargetFileError with one line naming the file and the
place that is wrong.  The analyses see only this: memory, symbols, layouts, stacks.
"""
import base64
import binascii
import bisect
import gzip
import json
import os
import re
import stat
import zlib

from ..errors import MemoryFault, SymbolNotFound, TargetFileError, TypeNotFound
from ..render.out import printable
from .base import BugCheck, Frame, Module, Processor, Target, wrapped
from .layouts import check_layouts, load_shipped, show

FORMAT = "pykd_ext-mock-target"
VERSION = 1

# Bounds on what a target file may be (checked before anything is parsed):
MAX_FILE_BYTES = 256 << 20     # on disk and after gunzip (the loader's peak: about this, plus the parse);
                               # a recording of a large hang is tens of MB
MAX_DEPTH = 32                 # JSON nesting: the format needs 6 (layouts.structs.X.fields.F.offset)
MAX_PROCESSORS = 4096          # Windows' own limit is 2,048 logical processors
ADDRESS_LIMIT = 1 << 64

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)     # unrolled: linear and fast on base64
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def _hex(v, where):
    if isinstance(v, str) and v[:2].lower() == "0x" and len(v) <= 18:
        try:
            n = int(v, 16)
        except ValueError:
            pass
        else:
            if 0 <= n < ADDRESS_LIMIT:
                return n
    raise ValueError('%s: expected a 64-bit hex string like "0xfffff80000000000", got %s' % (where, show(v)))


def _obj(v, where, kind=dict):
    if not isinstance(v, kind):
        raise ValueError("%s: expected %s, got %s" % (where, "an object" if kind is dict else "a list", show(v)))
    return v


def _text(v, where):
    if not isinstance(v, str):
        raise ValueError("%s: expected a string, got %s" % (where, show(v)))
    return printable(v)


def _key(k):
    """A key in a JSON path: as it is when plain, else quoted (ensure_ascii: one printable line)."""
    return k if re.match(r"^[A-Za-z0-9_]+$", k) else json.dumps(k)


class _Closing(object):
    """Closes a descriptor that is not a regular file (no file object is made for it)."""

    def __init__(self, fd):
        self.fd = fd

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.close(self.fd)
        return False


def read_limited(path):
    """The bytes of the file at `path`, gunzipped when it is gzip: only a regular file (a FIFO
    with no writer would block forever, /dev/zero never ends), at most MAX_FILE_BYTES on disk
    and after decompression.  TargetFileError names `path` and what is wrong."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as e:
        raise TargetFileError("%s: cannot read: %s" % (path, e.strerror or e))
    try:
        st = os.fstat(fd)
    except OSError as e:
        os.close(fd)
        raise TargetFileError("%s: cannot read: %s" % (path, e.strerror or e))
    with os.fdopen(fd, "rb", closefd=True) if stat.S_ISREG(st.st_mode) else _Closing(fd) as f:
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode) \
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file"
            raise TargetFileError("%s: cannot read: %s, not a mock target file" % (path, kind))
        if st.st_size > MAX_FILE_BYTES:
            raise TargetFileError("%s: %d bytes, more than a target file may have (%d)" % (path, st.st_size, MAX_FILE_BYTES))
        try:
            raw = f.read(MAX_FILE_BYTES + 1)
        except OSError as e:
            raise TargetFileError("%s: cannot read: %s" % (path, e.strerror or e))
    if len(raw) > MAX_FILE_BYTES:
        raise TargetFileError("%s: more than %d bytes, more than a target file may have" % (path, MAX_FILE_BYTES))
    if raw[:2] == b"\x1f\x8b":
        raw = _gunzip(raw, path)
    return raw


GUNZIP_STEP = 16 << 20         # bytes decompressed per step: the limit is checked as they come


def _gunzip(raw, path):
    """The gunzipped bytes (every member), refused past MAX_FILE_BYTES while decompressing:
    memory stays at about the limit, whatever the file expands to."""
    out = bytearray()
    while raw:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        data = raw
        while data and not d.eof:
            try:
                out += d.decompress(data, GUNZIP_STEP)
            except zlib.error as e:
                raise TargetFileError("%s: gzip data is truncated or corrupt (%s)" % (path, e))
            if len(out) > MAX_FILE_BYTES:
                raise TargetFileError("%s: more than %d bytes once decompressed, more than a target file may have"
                                      % (path, MAX_FILE_BYTES))
            data = d.unconsumed_tail
        if not d.eof:
            raise TargetFileError("%s: gzip data is truncated or corrupt (the stream ends early)" % path)
        raw = d.unused_data
        if raw and raw[:2] != b"\x1f\x8b":
            if raw.strip(b"\0"):
                raise TargetFileError("%s: gzip data is followed by %d bytes of something else" % (path, len(raw)))
            break
    return out


def check_depth(raw):
    """The deepest nesting of arrays and objects in JSON text `raw` (strings skipped), or
    MAX_DEPTH + 1 as soon as it is deeper: json.loads recurses once per level."""
    depth = 0
    for b in _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS):
        if b in b"[{":
            depth += 1
            if depth > MAX_DEPTH:
                return depth
        else:
            depth -= 1
    return 0


def partial_recording(target):
    """Why `target` -- or the backend it wraps (the page cache, a simulated link) -- is a
    partial recording (its file's "partial"), else None."""
    why = wrapped(target, "partial")
    return why if isinstance(why, str) and why else None


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
        # a recording is named by the file replayed, and what it was recorded from: the title
        # and JSON "target" of a replay must not pass it off as the original target
        self.name = "%s (recorded from %s)" % (printable(name), self._origin) if self._origin else name
        self.origin = self._origin
        self.path = name              # the file given

    # -- loading --------------------------------------------------------------------------------

    @classmethod
    def load(cls, path):
        """The target in the file at `path`, checked completely; TargetFileError (one line naming
        `path`, as given, and the JSON path of the bad place) when anything is wrong."""
        raw = read_limited(path)
        if check_depth(raw) > MAX_DEPTH:
            raise TargetFileError("%s: JSON nested deeper than %d levels: not a mock target" % (path, MAX_DEPTH))
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise TargetFileError("%s: not valid JSON (%s): truncated or not a mock target"
                                  % (path, str(e).splitlines()[0][:120] if str(e) else type(e).__name__))
        try:
            return cls(doc, name=path)
        except ValueError as e:
            raise TargetFileError("%s: %s" % (path, e))

    def _parse(self, doc, memory=None):
        """Check every part of the document; ValueError("<JSON path>: what is wrong")."""
        _obj(doc, "top level")
        if doc.get("format") != FORMAT:
            raise ValueError('format: expected "%s", got %s' % (FORMAT, show(doc.get("format"))))
        if type(doc.get("version")) is not int or doc.get("version") != VERSION:
            raise ValueError("version: this pykd_ext reads version %d, the file has %s"
                             % (VERSION, show(doc.get("version"))))
        if "layouts" in doc:
            self._layouts = check_layouts(doc["layouts"], "layouts")
        elif "build" in doc:
            try:
                self._layouts = load_shipped(doc["build"])
            except TypeNotFound as e:
                raise ValueError("build: no %s" % e.name)
        else:
            raise ValueError('neither "build" nor "layouts" is given')
        for k in ("comment", "origin", "partial"):
            if doc.get(k) is not None:
                _text(doc[k], k)
        self._origin = printable(doc["origin"]) if doc.get("origin") else None
        self.partial = printable(doc["partial"]) if doc.get("partial") else None
        rc = doc.get("recorded_commands")
        self.recorded_commands = None
        if rc is not None:
            _obj(rc, "recorded_commands", list)
            self.recorded_commands = [_text(c, "recorded_commands[%d]" % i) for i, c in enumerate(rc)]

        self.modules = []
        for i, m in enumerate(_obj(doc.get("modules", []), "modules", list)):
            w = "modules[%d]" % i
            _obj(m, w)
            name = _text(m.get("name"), w + ".name")
            if not name or "!" in name:
                raise ValueError("%s.name: expected a module name, got %s" % (w, show(m.get("name"))))
            image = _text(m.get("image", name), w + ".image")
            base, size = _hex(m.get("base"), w + ".base"), _hex(m.get("size"), w + ".size")
            if base + size > ADDRESS_LIMIT:
                raise ValueError("%s.size: the module ends past the 64-bit address space" % w)
            self.modules.append(Module(name, image, base, base + size))
        self.modules.sort(key=lambda m: m.base)
        self._mod_starts = [m.base for m in self.modules]

        self.symbols = {}
        for k, v in _obj(doc.get("symbols", {}), "symbols").items():
            if "!" not in k or not k.split("!", 1)[0] or not k.split("!", 1)[1]:
                raise ValueError("symbols[%s]: expected module!name" % _key(k))
            self.symbols[k.lower()] = _hex(v, "symbols[%s]" % _key(k))
        self._by_addr = sorted((self.symbols[n.lower()], printable(n)) for n in doc.get("symbols", {}))
        self._sym_addrs = [a for a, _ in self._by_addr]

        ranges = [(a, a + len(d), d) for a, d in memory or ()]
        for i, r in enumerate(_obj(doc.get("memory", []), "memory", list)):
            w = "memory[%d]" % i
            _obj(r, w)
            start = _hex(r.get("address"), w + ".address")
            if not isinstance(r.get("data", ""), str):
                raise ValueError("%s.data: expected a base64 string, got %s" % (w, show(r.get("data"))))
            try:
                data = base64.b64decode(r.get("data", ""), validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("%s.data: not base64" % w)
            if start + len(data) > ADDRESS_LIMIT:
                raise ValueError("%s: the range ends past the 64-bit address space" % w)
            ranges.append((start, start + len(data), data))
        ranges.sort(key=lambda r: (r[0], r[1]))
        for x, y in zip(ranges, ranges[1:]):
            if y[0] < x[1]:
                raise ValueError("memory: ranges at 0x%x and 0x%x overlap" % (x[0], y[0]))
        self._ranges = ranges
        self._starts = [r[0] for r in ranges]

        self._stacks = {}
        for k, frames in _obj(doc.get("stacks", {}), "stacks").items():
            t = _hex(k, "stacks key %s" % _key(k))
            out = []
            for j, f in enumerate(_obj(frames, "stacks[%s]" % _key(k), list)):
                w = "stacks[%s][%d]" % (_key(k), j)
                _obj(f, w)
                out.append(Frame(_hex(f.get("ip"), w + ".ip"), _hex(f.get("ret", "0x0"), w + ".ret"),
                                 _hex(f.get("sp", "0x0"), w + ".sp"), _hex(f.get("fp", "0x0"), w + ".fp")))
            self._stacks[t] = out

        self._processors = []
        seen = set()
        procs = _obj(doc.get("processors", []), "processors", list)
        if len(procs) > MAX_PROCESSORS:
            raise ValueError("processors: %d, more than %d" % (len(procs), MAX_PROCESSORS))
        for i, p in enumerate(procs):
            w = "processors[%d]" % i
            _obj(p, w)
            index = p.get("index")
            if type(index) is not int or not 0 <= index < MAX_PROCESSORS:
                raise ValueError("%s.index: expected an integer from 0 to %d, got %s" % (w, MAX_PROCESSORS - 1, show(index)))
            if index in seen:
                raise ValueError("%s.index: processor %d is given twice" % (w, index))
            seen.add(index)
            self._processors.append(Processor(index, _hex(p.get("prcb"), w + ".prcb")))

        self._described = {}
        for k, v in _obj(doc.get("describe", {}), "describe").items():
            self._described[_hex(k, "describe key %s" % _key(k))] = _text(v, "describe[%s]" % _key(k))

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
