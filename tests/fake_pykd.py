"""A fake `pykd` module backed by a mock target, for testing the pykd backend without Windows.

It implements the part of pykd's API the backend uses, with pykd's behaviour as read in its
source (pykd 0.3.4 / kdlibcpp):

- `loadBytes` checks the whole range and fails as a whole with `MemoryException` when any byte
  is invalid; the exception names the address in its message only (no attribute);
- `findSymbol` never raises: `mod!sym+1a3`, else `mod+3c`, else bare hex, displacements in
  hex without `0x`;
- `bugCheckData` raises `DbgException` when the target has no bug check;
- `getStack` unwinds the implicit thread, which `setCurrentThread` switches;
- `typeInfo` answers from real-shaped symbols, not from the trimmed layouts the backend is checked
  against: the Volatility 3 ISF of the build (tests/data/isf/<build>.isf.json.gz, trimmed from
  Microsoft's ntkrnlmp.pdb by tools/trim_isf.py) plus tests/data/isf/real-symbol-extras.json
  (types the trimmed ISF lacks, such as `_KUSER_SHARED_DATA` and `_KSYSTEM_TIME`, each with its
  public source).  Types keep their PDB shape: `_KUSER_SHARED_DATA.InterruptTime` is a 12-byte
  `_KSYSTEM_TIME`, anonymous union members are listed flat, named members of unnamed types are
  `<unnamed-tag>` types of their own.  Names are kdlib's (`UInt4B`, `_KTHREAD*`,
  `_KWAIT_BLOCK[4]`, `UInt1B:1`, `<unnamed-tag>`); fields are direct only; no WDK typedef the
  symbols lack.  An unknown type raises `SymbolException` (kdlib's symbol lookup), an unknown
  field `TypeException` (kdlib FieldCollection::lookup: 'field "X not found');
- `loadDump`/`attachKernel` open a mock target file as if it were a dump or a kernel.

Every call is counted in `calls`.  Every pykd function that can write target memory or
registers, or resume or change the target, is present and records itself in `forbidden`
before raising: a test asserts that list stays empty.
"""
import collections
import gzip
import json
import os
import re
import types

from pykd_ext.errors import MemoryFault, SymbolNotFound, TargetFileError
from pykd_ext.target.mock import MockTarget

# pykd functions that write target memory or registers, or change the target's state
WRITERS = (
    "setByte setWord setDWord setQWord setSignByte setSignWord setSignDWord setSignQWord "
    "setFloat setDouble setPtr writeBytes writeWords writeDWords writeQWords writeSignBytes "
    "writeSignWords writeSignDWords writeSignQWords writeFloats writeDoubles writeCStr writeWStr "
    "setReg setIP setSP setFP wrmsr setCPUMode stackAlloc stackFree pushStack popStack "
    "callFunctionByPtr callFunctionByAddr callFunctionRaw setBp go step trace stepout sourceStep "
    "sourceStepOver breakin killProcess killAllProcesses detachProcess detachAllProcesses").split()

# debugger commands that edit memory or registers (e*, f, r with '=', .write_cmd_hist is harmless)
_EDITING = re.compile(r"^\s*(e[abdDfpqQuwz]?\b|f\b|fp\b|r\b.*=|\.?restart|g\b|p\b|t\b|\.reboot|\.crash)")

ISF_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "isf")
EXTRAS = os.path.join(ISF_DIR, "real-symbol-extras.json")

# ISF base names -> kdlib's
_PYKD_BASE = {
    "char": "Char", "unsigned char": "UInt1B", "wchar": "WChar", "short": "Int2B",
    "unsigned short": "UInt2B", "int": "Int4B", "unsigned int": "UInt4B", "long": "Long",
    "unsigned long": "ULong", "long long": "Int8B", "unsigned long long": "UInt8B",
    "f32": "Float", "double": "Double", "void": "Void", "HRESULT": "Hresult", "bool": "Bool",
    "pointer": "UInt8B",
}


class DbgException(Exception):
    pass


class MemoryException(DbgException):
    pass


class SymbolException(DbgException):
    pass


class TypeException(SymbolException):
    pass


class _Frame(object):
    def __init__(self, f):
        self.ip, self.ret, self.sp, self.fp = f.ip, f.ret, f.sp, f.fp
        self.instructionOffset, self.returnOffset = f.ip, f.ret
        self.stackOffset, self.frameOffset = f.sp, f.fp


class _Const(object):
    def __init__(self, value):
        self.value = value

    def __int__(self):
        return self.value

    __index__ = __int__

    def isBitField(self):
        return False


class Symbols(object):
    """One build's types as the public PDB gives them: the trimmed ISF, then the extras."""

    def __init__(self, build):
        with gzip.open(os.path.join(ISF_DIR, build + ".isf.json.gz"), "rt") as f:
            isf = json.load(f)
        with open(EXTRAS) as f:
            extras = json.load(f)
        self.build = build
        self.base_types = isf["base_types"]
        self.enums = isf["enums"]
        self.user_types = dict(isf["user_types"])
        for name, t in extras["user_types"].items():
            if name not in self.user_types:
                self.user_types[name] = t
        self._sorted = {}

    def fields(self, name):
        """[(name, ISF field)] of a user type in offset order, and {name: field}."""
        if name not in self._sorted:
            fields = self.user_types[name]["fields"]
            self._sorted[name] = (sorted(fields.items(), key=lambda kv: kv[1]["offset"]), fields)
        return self._sorted[name]

    def size(self, name):
        t = self.user_types[name]
        if t.get("size") is not None:
            return t["size"]
        # an extra whose size no source gave for this build: the end of its last listed field
        return t.get("size_by_build", {}).get(self.build, t.get("size_lower_bound"))


_SYMBOLS = {}


def symbols(build):
    if build not in _SYMBOLS:
        _SYMBOLS[build] = Symbols(build)
    return _SYMBOLS[build]


def _unnamed(name):
    return name.startswith(("__anonymous", "__unnamed", "<"))


class FakeTypeInfo(object):
    """typeInfo over ISF data: kind is struct/unnamed/base/ptr/array/enum/bitfield/function."""

    def __init__(self, fake, kind, name, size, **kw):
        self._fake, self._kind, self._name, self._size = fake, kind, name, size
        self._kw = kw

    # kdlib's flags
    def name(self):
        return self._name

    def size(self):
        if self._size is None:
            raise TypeException("%s: incomplete type" % self._name)
        return self._size

    def isPointer(self):
        return self._kind == "ptr"

    def isArray(self):
        return self._kind == "array"

    def isEnum(self):
        return self._kind == "enum"

    def isBitField(self):
        return self._kind == "bitfield"

    def isBase(self):
        return self._kind == "base"

    def isFunction(self):
        return self._kind == "function"

    def isUserDefined(self):
        return self._kind in ("struct", "unnamed")

    def isVoid(self):
        return self._kind == "base" and self._name == "Void"

    def deref(self):
        if self._kind not in ("ptr", "array"):
            raise TypeException("%s: type can not be dereffered" % self._name)
        return self._kw["target"]

    def bitOffset(self):
        if self._kind != "bitfield":
            raise TypeException("%s: type is not a bit field" % self._name)
        return self._kw["bit_position"]

    def bitWidth(self):
        if self._kind != "bitfield":
            raise TypeException("%s: type is not a bit field" % self._name)
        return self._kw["bit_length"]

    def _direct(self):
        """[(name, ISF field)] in offset order (the PDB's order for all but union overlays)."""
        if self._kind not in ("struct", "unnamed"):
            raise TypeException("%s: type has no fields or array elements" % self._name)
        return self._kw["fields"][0]

    def _field(self, name):
        f = self._kw["fields"][1].get(name) if self._kind in ("struct", "unnamed") else None
        if f is None:
            raise TypeException('%s: field "%s not found' % (self._name, name))
        return f

    def fields(self):
        self._fake.calls["typeInfo.fields"] += 1
        if self._kind == "enum":
            return [(n, _Const(v)) for n, v in sorted(self._kw["constants"].items(), key=lambda x: x[1])]
        return [(n, self._fake._from_isf(f["type"])) for n, f in self._direct()]

    def hasField(self, name):
        return self._kind in ("struct", "unnamed") and name in self._kw["fields"][1]

    def fieldOffset(self, name):
        self._fake.calls["typeInfo.fieldOffset"] += 1
        t, off = self, 0
        for part in name.split("."):
            try:
                f = t._field(part)
            except TypeException:
                raise TypeException('%s: field "%s not found' % (self._name, name))
            off += f["offset"]
            t = self._fake._from_isf(f["type"])
        return off

    def __str__(self):
        return self._name


class FakeModule(object):
    def __init__(self, m):
        self._m = m

    def name(self):
        return self._m.name

    def image(self):
        return self._m.image

    def begin(self):
        return self._m.base

    def end(self):
        return self._m.end

    def size(self):
        return self._m.end - self._m.base


class FakePykd(types.ModuleType):
    DbgException = DbgException
    MemoryException = MemoryException
    SymbolException = SymbolException
    TypeException = TypeException

    def __init__(self, target=None, windbg=False, kernels=None):
        types.ModuleType.__init__(self, "pykd")
        self.target = target            # a MockTarget, or None until loadDump/attachKernel
        self.windbg = windbg
        self.dump = True
        self.kernels = kernels or {}    # connection string -> mock target path
        self.calls = collections.Counter()
        self.forbidden = []
        self.commands = []
        self.printed = []
        self.implicit_thread = 0xfffff80000b96cc0      # what the session starts on
        for name in WRITERS:
            setattr(self, name, self._writer(name))

    def _writer(self, name):
        def write(*args, **kw):
            self.forbidden.append((name, args))
            raise AssertionError("pykd.%s called: the backend must never write or resume" % name)
        return write

    # -- sessions -----------------------------------------------------------------------------

    def initialize(self):
        self.calls["initialize"] += 1

    def loadDump(self, path):
        self.calls["loadDump"] += 1
        try:
            self.target = MockTarget.load(path)
        except TargetFileError as e:
            raise DbgException("IDebugClient4::OpenDumpFileWide failed: %s" % e)
        self.dump = True
        return 0

    def attachKernel(self, connectOptions=""):
        self.calls["attachKernel"] += 1
        if connectOptions not in self.kernels:
            raise DbgException("IDebugClient::AttachKernel failed HRESULT 0x80004005")
        self.target = MockTarget.load(self.kernels[connectOptions])
        self.dump = False
        return 0

    def isWindbgExt(self):
        return self.windbg

    def isKernelDebugging(self):
        return self.target is not None

    def isDumpAnalyzing(self):
        return self.dump

    def ptrSize(self):
        return self.target.pointer_size

    def is64bitSystem(self):
        return self.target.pointer_size == 8

    def getSystemVersion(self):
        build = self.target.layouts().build
        nums = [int(x) for x in re.findall(r"\d+", build)]
        return types.SimpleNamespace(buildString=build, buildNumber=nums[-2] if len(nums) > 1 else 0,
                                     win32Major=nums[1] if len(nums) > 1 else 0, win32Minor=0,
                                     servicePack="")

    def dprint(self, text, dml=False):
        self.printed.append((text, dml))

    def dprintln(self, text, dml=False):
        self.printed.append((text + "\n", dml))

    def dbgCommand(self, cmd, suppressOutput=True):
        self.calls["dbgCommand"] += 1
        self.commands.append(cmd)
        if _EDITING.match(cmd):
            self.forbidden.append(("dbgCommand", (cmd,)))
            raise AssertionError("dbgCommand(%r) edits the target" % cmd)
        return None

    # -- memory -------------------------------------------------------------------------------

    def _read(self, address, size):
        try:
            return self.target.read(address, size)
        except MemoryFault as e:
            raise MemoryException("Memory exception at 0x%x" % e.address)

    def loadBytes(self, offset, count, phyAddr=False):
        self.calls["loadBytes"] += 1
        return list(self._read(offset, count))

    def isValid(self, offset):
        self.calls["isValid"] += 1
        try:
            self.target.read(offset, 1)
            return True
        except MemoryFault:
            return False

    def _ptr(self, name, size, offset):
        self.calls[name] += 1                  # one debugger read per value
        return int.from_bytes(self._read(offset, size), "little")

    def ptrPtr(self, offset):
        return self._ptr("ptrPtr", 8, offset)

    def ptrQWord(self, offset):
        return self._ptr("ptrQWord", 8, offset)

    def ptrDWord(self, offset):
        return self._ptr("ptrDWord", 4, offset)

    def loadPtrs(self, offset, count):
        out = []
        for i in range(count):             # pykd reads one element per call
            self.calls["loadPtrs"] += 1
            out.append(int.from_bytes(self._read(offset + 8 * i, 8), "little"))
        return out

    def typedVar(self, *args):
        self.calls["typedVar"] += 1
        raise AssertionError("typedVar: one debugger read per field; the backend must not use it")

    # -- symbols ------------------------------------------------------------------------------

    def getOffset(self, name):
        self.calls["getOffset"] += 1
        try:
            return self.target.symbol(name)
        except SymbolNotFound:
            raise SymbolException("symbol %s is not found" % name)

    def findSymbol(self, offset, showDisplacement=True):
        self.calls["findSymbol"] += 1
        t = self.target
        m = t.module_at(offset)
        if m is None:
            return "%x" % offset
        best = None
        for a, n in t._by_addr:
            if m.base <= a <= offset and n.split("!")[0].lower() == m.name.lower():
                best = (a, n)
        if best is None:
            return "%s+%x" % (m.name, offset - m.base) if showDisplacement else m.name
        a, n = best
        sym = "%s!%s" % (m.name, n.split("!", 1)[1])
        return sym + ("+%x" % (offset - a) if showDisplacement and offset != a else "")

    def module(self, key):
        self.calls["module"] += 1
        t = self.target
        if isinstance(key, str):
            for m in t.modules:
                if m.name.lower() == key.lower():
                    return FakeModule(m)
            raise SymbolException("module %s not found" % key)
        m = t.module_at(key)
        if m is None:
            raise DbgException("module at 0x%x not found" % key)
        return FakeModule(m)

    # -- types --------------------------------------------------------------------------------

    def _symbols(self):
        return symbols(self.target.layouts().build)

    def typeInfo(self, name):
        self.calls["typeInfo"] += 1
        name = name.split("!")[-1]
        syms = self._symbols()
        if name in syms.user_types and not _unnamed(name):
            return self._user(name)
        if name in syms.enums:
            return self._enum(name)
        raise SymbolException("%s is not found" % name)      # kdlib: symbol look-up fails

    def _user(self, name):
        syms = self._symbols()
        if name not in syms.user_types:    # reached through a pointer: the trimmed data lacks it
            return FakeTypeInfo(self, "struct", name, None, fields=([], {}))
        kind = "unnamed" if _unnamed(name) else "struct"
        return FakeTypeInfo(self, kind, "<unnamed-tag>" if kind == "unnamed" else name,
                            syms.size(name), fields=syms.fields(name))

    def _enum(self, name):
        e = self._symbols().enums.get(name, {})
        return FakeTypeInfo(self, "enum", name, e.get("size", 4), constants=e.get("constants", {}))

    def _from_isf(self, t):
        """The typeInfo of an ISF type description, named as kdlib names it."""
        kind = t["kind"]
        syms = self._symbols()
        if kind == "base":
            b = syms.base_types.get(t["name"], {})
            return FakeTypeInfo(self, "base", _PYKD_BASE.get(t["name"], t["name"]), b.get("size", 0))
        if kind == "pointer":
            target = self._from_isf(t["subtype"])
            return FakeTypeInfo(self, "ptr", target.name() + "*", self.target.pointer_size,
                                target=target)
        if kind == "array":
            elem = self._from_isf(t["subtype"])
            n = t["count"]
            size = elem._size * n if elem._size is not None else None
            # kdlib writes the dimensions outer first, as C does: UInt8B[4][2] for Cycles[4][2]
            base, dims = elem._kw.get("base_name", elem.name()), elem._kw.get("dims", "")
            return FakeTypeInfo(self, "array", "%s[%d]%s" % (base, n, dims), size, target=elem,
                                base_name=base, dims="[%d]%s" % (n, dims))
        if kind in ("struct", "union", "class"):
            return self._user(t["name"])
        if kind == "enum":
            return self._enum(t["name"])
        if kind == "bitfield":
            under = self._from_isf(t["type"])
            return FakeTypeInfo(self, "bitfield", "%s:%d" % (under.name(), t["bit_length"]),
                                under._size, bit_position=t["bit_position"],
                                bit_length=t["bit_length"])
        if kind == "function":
            return FakeTypeInfo(self, "function", "Void(__cdecl*)()", 0)
        raise TypeException("ISF type kind %r" % kind)

    # -- threads, stacks, bug check -------------------------------------------------------------

    def getCurrentThread(self):
        self.calls["getCurrentThread"] += 1
        return self.implicit_thread

    def setCurrentThread(self, offset):
        self.calls["setCurrentThread"] += 1
        self.implicit_thread = offset

    getImplicitThread = getCurrentThread
    setImplicitThread = setCurrentThread

    def getStack(self, inlineFrames=False):
        self.calls["getStack"] += 1
        t = self.implicit_thread
        try:
            self.target.read(t, 8)
        except MemoryFault:
            raise DbgException("IDebugControl4::GetContextStackTraceEx failed: thread 0x%x" % t)
        return [_Frame(f) for f in self.target.stack(t)]

    def bugCheckData(self):
        self.calls["bugCheckData"] += 1
        bc = self.target.bugcheck()
        if bc is None:
            raise DbgException("IDebugControl::ReadBugCheckData failed HRESULT 0x8000FFFF")
        return (bc.code,) + tuple(bc.args)
