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
- `loadDump`/`attachKernel` open a mock target file as if it were a dump or a kernel;
- sessions as the real ones start (each behaviour cites the pykd/kdlib/bootstrapper line):
  a standalone session has kernel symbols only with a symbol path (`_NT_SYMBOL_PATH` at the
  engine's start, or `setSymbolPath` then `module("nt").reload()`); `attachKernel` breaks the
  target in and nothing resumes it but `detachAllProcesses`; `bugCheckData` on a live kernel
  is zeros; the implicit thread has a default that `setImplicitThread(0)` goes back to; a user
  break (`user_break()`) arrives as the bootstrapper delivers it, or never, per Python version;
  `typeInfo` can carry static and constant members and incomplete arrays (`add_member`) as
  C++ and real PDB types do, with kdlib's exceptions for them.

Every call is counted in `calls`.  Every pykd function that can write target memory or
registers, or resume or change the target, is present and records itself in `forbidden`
before raising: a test asserts that list stays empty.
"""
import collections
import gzip
import json
import os
import re
import sys
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
    "sourceStepOver breakin killProcess killAllProcesses detachProcess").split()
# detachAllProcesses is allowed on one occasion only: resuming a kernel connection this process
# broke in (FakePykd.detachAllProcesses records anything else as forbidden)

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
        return [(n, self._fake._from_isf(f["type"])) for n, f in self._direct()] + \
            [(n, ti) for n, (kind, ti, off) in self._extras().items()]

    def _extras(self):
        """Members the ISF cannot carry (FakePykd.add_member): {name: (kind, typeInfo, offset)}."""
        return self._fake._extra_members.get(self._name, {}) if self._kind == "struct" else {}

    # kdlib TypeInfoFields::isStaticMember/isConstMember (typeinfo.cpp:1313-1389), in pykd as
    # isStaticField/isConstField (pymod.cpp:931-937)
    def isStaticField(self, name):
        return self._extras().get(name, ("",))[0] == "static"

    def isConstField(self, name):
        return self._extras().get(name, ("",))[0] == "const"

    def hasField(self, name):
        return self._kind in ("struct", "unnamed") and name in self._kw["fields"][1]

    def fieldOffset(self, name):
        self._fake.calls["typeInfo.fieldOffset"] += 1
        extra = self._extras().get(name)
        if extra is not None:
            if extra[0] in ("static", "const"):
                # kdlib udtfield.h:52-58: TypeException(name, "static field has no offset")
                raise TypeException("%s : static field has no offset" % name)
            return extra[2]
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
    def __init__(self, m, fake=None):
        self._m = m
        self._fake = fake

    def reload(self):
        """module.reload (pykd pymod.cpp:857): IDebugSymbols::Reload (kdlib win/dbgmod.cpp:294)."""
        self._fake._reload(self._m.name)

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

    DEFAULT_THREAD = 0xfffff80000b96cc0     # the implicit thread a session starts on

    def __init__(self, target=None, windbg=False, kernels=None, python_version=None):
        types.ModuleType.__init__(self, "pykd")
        self.target = target            # a MockTarget, or None until loadDump/attachKernel
        self.windbg = windbg
        self.dump = True
        self.kernels = kernels or {}    # connection string -> mock target path
        self.calls = collections.Counter()
        self.forbidden = []
        self.commands = []
        self.printed = []
        self.default_thread = self.DEFAULT_THREAD
        self.implicit_thread = self.default_thread
        self.explicit_thread = False    # the user (or a script) chose the implicit thread
        # symbols: inside WinDbg the user's session has them; a standalone engine reads
        # _NT_SYMBOL_PATH when it starts (kdlib initialize, win/dbgmgr.cpp) and nothing else
        # sets a path (kdlib win/sympath.cpp:22-45 only reads and writes it)
        self.symbol_path = None
        self.symbols_loaded = None      # None: not a standalone session (WinDbg's own, or a test's)
        self.broken_in = False          # a kernel target stopped by this engine
        self.detached = False
        self.python_version = tuple(python_version or sys.version_info[:2])
        self.undelivered_breaks = 0     # Ctrl+Breaks that never reached the script
        self._pending_exit = None
        self._extra_members = {}        # type -> [(name, kind, ...)]: static/const/incomplete
        self.registers = {}             # "rcx", "$t0" -> value, for expr()
        self.expressions = []           # what expr() was asked
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
        if self.symbol_path is None:     # DbgEng takes _NT_SYMBOL_PATH when the engine starts
            self.symbol_path = os.environ.get("_NT_SYMBOL_PATH", "")

    def loadDump(self, path):
        """kdlib loadDump: initialize() if needed, OpenDumpFile, WaitForEvent."""
        self.calls["loadDump"] += 1
        self.initialize()
        try:
            self.target = MockTarget.load(path)
        except TargetFileError as e:
            raise DbgException("IDebugClient4::OpenDumpFileWide failed: %s" % e)
        self.dump = True
        self.symbols_loaded = bool(self.symbol_path.strip())
        return 0

    def attachKernel(self, connectOptions=""):
        """kdlib win/dbgeng.cpp:471-498: initialize() if needed, the initial break turned on
        (setEngBreakOption, 210-235), AttachKernelWide, then WaitForEvent(INFINITE): it returns
        with the target broken in, and nothing resumes it when the process ends."""
        self.calls["attachKernel"] += 1
        self.initialize()
        if connectOptions not in self.kernels:
            raise DbgException("IDebugClient::AttachKernel failed HRESULT 0x80004005")
        self.target = MockTarget.load(self.kernels[connectOptions])
        self.dump = False
        self.broken_in = bool(connectOptions)
        self.symbols_loaded = bool(self.symbol_path.strip())
        return 0

    def detachAllProcesses(self):
        """kdlib win/dbgeng.cpp:347-358: IDebugClient::DetachProcesses ("resuming all their
        threads"); the session has no debuggee after.  Allowed here only to resume a kernel
        connection this engine broke in: anywhere else it would end the user's session."""
        self.calls["detachAllProcesses"] += 1
        if self.windbg or not self.broken_in:
            self.forbidden.append(("detachAllProcesses", ()))
            raise AssertionError("detachAllProcesses outside a kernel connection we broke in")
        self.broken_in = False
        self.detached = True

    def add_member(self, type_name, name, kind, offset=None, elem="UInt1B"):
        """Give `type_name` a member real symbols have and the ISF cannot carry: kind "static"
        or "const" (C++ members with no offset: kdlib udtfield.h:52-58), or "incomplete" (an
        array without a bound, `UCHAR Data[]` at `offset`: kdlib TypeInfoIncompleteArray,
        typeinfoimp.h:1034, whose size() raises)."""
        if kind == "incomplete":
            e = FakeTypeInfo(self, "base", elem, 1)
            ti = FakeTypeInfo(self, "array", elem + "[]", None, target=e, base_name=elem, dims="[]")
        else:
            ti = FakeTypeInfo(self, "base", "ULong", 4)
        self._extra_members.setdefault(type_name, {})[name] = (kind, ti, offset)

    # -- symbol path: pykd pymod.cpp:614-618 -> kdlib win/sympath.cpp:22-45 ------------------

    def getSymbolPath(self):
        self.calls["getSymbolPath"] += 1
        if self.symbol_path is None:
            self.symbol_path = os.environ.get("_NT_SYMBOL_PATH", "")
        return self.symbol_path

    def setSymbolPath(self, path):
        """SetSymbolPathWide: modules already loaded keep their (missing) symbols until a
        reload (module.reload, kdlib win/dbgmod.cpp:294)."""
        self.calls["setSymbolPath"] += 1
        if self.windbg:
            self.forbidden.append(("setSymbolPath", (path,)))
            raise AssertionError("setSymbolPath inside WinDbg changes the user's session")
        self.symbol_path = path

    def appendSymbolPath(self, path):
        self.setSymbolPath(";".join(p for p in (self.symbol_path, path) if p))

    def _reload(self, name):
        self.calls["reload"] += 1
        if name.lower() == "nt" and (self.symbol_path or "").strip():
            self.symbols_loaded = True

    def _need_symbols(self, what):
        if self.symbols_loaded is False and not self.windbg:
            raise SymbolException("%s: symbols not loaded (empty symbol path)" % what)

    # -- a user break, as the bootstrapper delivers it ------------------------------------------

    def user_break(self):
        """Ctrl+Break in WinDbg: the bootstrapper's watcher (pykd-ext sources/windbgext.cpp:34-88)
        sees GetInterrupt, then Py_AddPendingCall(quit) -> SystemExit("CTRL+BREAK").  The
        call is queued from a thread with PyGILState_Ensure, i.e. for the main interpreter;
        scripts run in a sub-interpreter (windbgext.cpp:415).  On 3.8 pending calls are
        process-wide and the exit arrives (at the next pykd call here); from 3.9 they are per
        interpreter and it never reaches the script."""
        if self.python_version < (3, 9):
            self._pending_exit = SystemExit("CTRL+BREAK")
        else:
            self.undelivered_breaks += 1

    def _deliver(self):
        if self._pending_exit is not None:
            e, self._pending_exit = self._pending_exit, None
            raise e

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

    # -- expressions --------------------------------------------------------------------------

    def expr(self, expression, cplusplus=False):
        """pykd.expr (pykd pymod.cpp:212 -> pydbgeng.cpp:14 -> kdlib::evaluate, kdlib
        win/dbgeng.cpp:597-665): IDebugControl::EvaluateWide in MASM syntax, an integer back.
        A failed evaluation is kdlib's DbgEngException, whose text is built by
        buildHresultDesc (kdlib win/exceptions.h:21-27: "Call <method> failed\nHRESULT 0x<hex>")
        and which pykd raises as DbgException (pykd dbgexcept.h:82-112: no special case for
        it).  This fake takes a MASM subset: hex numbers (default radix 16, 0x, backticks),
        0n decimal, module!symbol and bare names (nt's), @register and @$pseudo-register
        (and $pseudo-register) from `self.registers`, poi(), + - * and parentheses.  Anything
        else fails as kdlib fails it; the HRESULT DbgEng returns for a bad expression is not
        documented: the fake says E_FAIL (0x80004005)."""
        self.calls["expr"] += 1
        self.expressions.append(expression)
        try:
            return _MasmSubset(self, expression).value()
        except (_NotMasm, MemoryException, SymbolException):
            raise DbgException("Call IDebugControl::Evaluate failed\nHRESULT 0x80004005")

    # -- memory -------------------------------------------------------------------------------

    def _read(self, address, size):
        try:
            return self.target.read(address, size)
        except MemoryFault as e:
            raise MemoryException("Memory exception at 0x%x" % e.address)

    def loadBytes(self, offset, count, phyAddr=False):
        """The whole range is checked before one read: any invalid byte fails the call as a
        whole with MemoryException naming the address (kdlib memaccess: isVaRegionValid then
        ReadVirtual)."""
        self.calls["loadBytes"] += 1
        self._deliver()
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
        self._need_symbols(name)
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
                    return FakeModule(m, self)
            raise SymbolException("module %s not found" % key)
        m = t.module_at(key)
        if m is None:
            raise DbgException("module at 0x%x not found" % key)
        return FakeModule(m, self)

    # -- types --------------------------------------------------------------------------------

    def _symbols(self):
        return symbols(self.target.layouts().build)

    def typeInfo(self, name):
        self.calls["typeInfo"] += 1
        self._need_symbols(name)
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

    # kernel mode: getCurrentThread/setCurrentThread are getImplicitThreadOffset/
    # setImplicitThread (kdlib win/dbgeng.cpp:1472-1492) -> SetImplicitThreadDataOffset, where
    # 0 means "the default implicit thread" (DbgEng's documentation of that method)

    def getImplicitThread(self):
        self.calls["getImplicitThread"] += 1
        return self.implicit_thread

    def setImplicitThread(self, offset):
        self.calls["setImplicitThread"] += 1
        if offset == 0:
            self.implicit_thread, self.explicit_thread = self.default_thread, False
        else:
            self.implicit_thread, self.explicit_thread = offset, True

    def getCurrentThread(self):
        self.calls["getCurrentThread"] += 1
        return self.getImplicitThread()

    def setCurrentThread(self, offset):
        self.calls["setCurrentThread"] += 1
        self.setImplicitThread(offset)

    def getStack(self, inlineFrames=False):
        self.calls["getStack"] += 1
        self._deliver()
        t = self.implicit_thread
        try:
            self.target.read(t, 8)
        except MemoryFault:
            raise DbgException("IDebugControl4::GetContextStackTraceEx failed: thread 0x%x" % t)
        return [_Frame(f) for f in self.target.stack(t)]

    def bugCheckData(self):
        """pykd pydbgeng.cpp:179-197 -> ReadBugCheckData.  A live kernel has no bug check:
        KiBugCheckData is zeros and so is the answer; a dump without one raises here."""
        self.calls["bugCheckData"] += 1
        if not self.dump:
            return (0, 0, 0, 0, 0)
        bc = self.target.bugcheck()
        if bc is None:
            raise DbgException("IDebugControl::ReadBugCheckData failed HRESULT 0x8000FFFF")
        return (bc.code,) + tuple(bc.args)


class _NotMasm(Exception):
    pass


_MASM_TOKEN = re.compile(r"\s*(?:(?P<dec>0n[0-9]+)|(?P<num>(?:0x)?[0-9a-f`]+)(?![\w!])"
                         r"|(?P<reg>@\$?\w+|\$\w+)|(?P<sym>[a-z_]\w*![\w@?$]+|[a-z_]\w*)|(?P<op>[-+*()]))", re.I)


class _MasmSubset(object):
    """The part of MASM expressions FakePykd.expr evaluates (recursive descent)."""

    def __init__(self, fake, text):
        self.fake, self.tokens, self.i = fake, [], 0
        pos, text = 0, text.strip()
        while pos < len(text):
            m = _MASM_TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise _NotMasm(text[pos:])
            self.tokens.append((m.lastgroup, m.group(m.lastgroup)))
            pos = m.end()

    def value(self):
        v = self.sum()
        if self.i != len(self.tokens):
            raise _NotMasm(self.tokens[self.i][1])
        return v

    def _peek(self):
        return self.tokens[self.i] if self.i < len(self.tokens) else (None, None)

    def sum(self):
        v = self.product()
        while self._peek() in (("op", "+"), ("op", "-")):
            op = self.tokens[self.i][1]
            self.i += 1
            w = self.product()
            v = (v + w if op == "+" else v - w) & 0xFFFFFFFFFFFFFFFF
        return v

    def product(self):
        v = self.atom()
        while self._peek() == ("op", "*"):
            self.i += 1
            v = (v * self.atom()) & 0xFFFFFFFFFFFFFFFF
        return v

    def atom(self):
        kind, val = self._peek()
        if kind is None:
            raise _NotMasm("end")
        self.i += 1
        if kind == "dec":
            return int(val[2:])
        if kind == "num":
            return int(val.replace("`", "").lower().replace("0x", "", 1), 16)
        if kind == "reg":
            name = val.lstrip("@").lower()
            if name not in self.fake.registers:
                raise _NotMasm(val)
            return self.fake.registers[name]
        if kind == "sym" and val.lower() == "poi" and self._peek() == ("op", "("):
            self.i += 1
            inner = self.sum()
            if self._peek() != ("op", ")"):
                raise _NotMasm("(")
            self.i += 1
            return int.from_bytes(self.fake._read(inner, 8), "little")
        if kind == "sym":
            return self.fake.getOffset(val if "!" in val else "nt!" + val)
        if val == "(":
            v = self.sum()
            if self._peek() != ("op", ")"):
                raise _NotMasm("(")
            self.i += 1
            return v
        raise _NotMasm(val)
