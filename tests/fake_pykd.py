"""A fake `pykd` module backed by a mock target, for testing the pykd backend without Windows.

It implements the part of pykd's API the backend uses, with pykd's behaviour as read in its
source (pykd 0.3.4 / kdlibcpp):

- `loadBytes` checks the whole range and fails as a whole with `MemoryException` when any byte
  is invalid; the exception names the address in its message only (no attribute);
- `findSymbol` never raises: `mod!sym+1a3`, else `mod+3c`, else bare hex, displacements in
  hex without `0x`;
- `bugCheckData` raises `DbgException` when the target has no bug check;
- `getStack` unwinds the implicit thread, which `setCurrentThread` switches;
- `typeInfo` names types as kdlib does (`UInt4B`, `_KTHREAD*`, `_KWAIT_BLOCK[4]`, `UInt1B:1`,
  `<unnamed-tag>`), lists direct fields only, and knows no WDK typedef the symbols lack;
- `loadDump`/`attachKernel` open a mock target file as if it were a dump or a kernel.

Every call is counted in `calls`.  Every pykd function that can write target memory or
registers, or resume or change the target, is present and records itself in `forbidden`
before raising: a test asserts that list stays empty.
"""
import collections
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

# our layouts' base names -> kdlib's
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


class FakeTypeInfo(object):
    """typeInfo over a layout set's data: kind is struct/unnamed/base/ptr/array/enum/bitfield."""

    def __init__(self, fake, kind, name, size, **kw):
        self._fake, self._kind, self._name, self._size = fake, kind, name, size
        self._kw = kw

    # kdlib's flags
    def name(self):
        return self._name

    def size(self):
        if self._kind == "struct" and self._size is None:
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
        return self._kw["target"]()

    def bitOffset(self):
        if self._kind != "bitfield":
            raise TypeException("%s: type is not a bit field" % self._name)
        return self._kw["bit_position"]

    def bitWidth(self):
        if self._kind != "bitfield":
            raise TypeException("%s: type is not a bit field" % self._name)
        return self._kw["bit_length"]

    def _direct(self):
        if self._kind == "enum":
            return [(n, (v, None)) for n, v in sorted(self._kw["constants"].items(), key=lambda x: x[1])]
        if self._kind not in ("struct", "unnamed"):
            raise TypeException("%s: type has no fields or array elements" % self._name)
        return self._kw["fields"]()

    def fields(self):
        self._fake.calls["typeInfo.fields"] += 1
        if self._kind == "enum":
            return [(n, _Const(v)) for n, (v, _) in self._direct()]
        return [(n, self._fake._type_of(f, self, n)) for n, f in self._direct()]

    def hasField(self, name):
        return any(n == name for n, _ in self._direct())

    def fieldOffset(self, name):
        self._fake.calls["typeInfo.fieldOffset"] += 1
        t, off = self, 0
        for part in name.split("."):
            for n, f in t._direct():
                if n == part:
                    off += f["offset"] - t._kw.get("base", 0)
                    t = self._fake._type_of(f, t, n)
                    break
            else:
                raise TypeException("%s has no field %s" % (self._name, name))
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

    def typeInfo(self, name):
        self.calls["typeInfo"] += 1
        name = name.split("!")[-1]
        ls = self.target.layouts()
        raw = ls._raw.get(name)                  # the symbols: no typedef aliases
        if raw is not None:
            return self._struct(name, raw)
        if name in ls.enums:
            e = ls.enums[name]
            return FakeTypeInfo(self, "enum", name, e.get("size", 4),
                                constants=e["constants"] if "constants" in e else e)
        raise TypeException("type %s is not found" % name)

    def _struct(self, name, raw):
        def direct():
            return sorted(raw.get("fields", {}).items(), key=lambda kv: kv[1]["offset"])
        return FakeTypeInfo(self, "struct", name, raw["size"], fields=direct, raw=raw, base=0)

    def _unnamed(self, parent, member, f):
        """The unnamed type of member `member`: its fields are the parent's dotted ones."""
        raw = parent._kw["raw"]
        prefix = parent._kw.get("prefix", "") + member + "."
        nested = raw.get("nested_fields", {})

        def direct():
            out = []
            for n, g in nested.items():
                if n.startswith(prefix) and "." not in n[len(prefix):]:
                    out.append((n[len(prefix):], g))
            return sorted(out, key=lambda kv: kv[1]["offset"])
        return FakeTypeInfo(self, "unnamed", "<unnamed-tag>", f["size"], fields=direct, raw=raw,
                            prefix=prefix, base=f["offset"])

    def _type_of(self, f, parent, member):
        t = f["type"]
        if f.get("bit_length") is not None:
            base = _PYKD_BASE.get(t, t)
            return FakeTypeInfo(self, "bitfield", "%s:%d" % (base, f["bit_length"]), f["size"],
                                bit_position=f["bit_position"], bit_length=f["bit_length"])
        if t.startswith(("__anonymous", "__unnamed")):
            return self._unnamed(parent, member, f)
        return self._parse(t, f["size"])

    def _parse(self, t, size):
        ps = self.target.pointer_size
        ls = self.target.layouts()
        m = re.match(r"^(.*)\[(\d+)\]$", t)
        if m:
            inner, n = m.group(1), int(m.group(2))
            elem_size = size // n if n else 0
            elem = self._parse(inner, elem_size)
            return FakeTypeInfo(self, "array", "%s[%d]" % (elem.name(), n), size,
                                target=lambda: elem)
        if t.startswith("ptr:"):
            inner = t[4:]
            inner_size = (ls._raw.get(inner) or {}).get("size") or ls.base_types.get(inner, {}).get("size")
            target = self._parse(inner, inner_size)
            return FakeTypeInfo(self, "ptr", target.name() + "*", ps, target=lambda: target)
        if t.startswith("enum:"):
            e = ls.enums.get(t[5:], {})
            return FakeTypeInfo(self, "enum", t[5:], size or e.get("size", 4),
                                constants=e.get("constants", e))
        if t == "function":
            return FakeTypeInfo(self, "function", "Void(__cdecl*)()", 0)
        if t in ls.base_types or t in _PYKD_BASE:
            return FakeTypeInfo(self, "base", _PYKD_BASE.get(t, t), ls.base_types.get(t, {}).get("size", size))
        raw = ls._raw.get(t)
        if raw is not None:
            return self._struct(t, raw)
        # a type the trimmed layouts do not carry: its size is known, its fields are not
        return FakeTypeInfo(self, "struct", t, size, fields=lambda: [], raw={})

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
