"""The pykd backend: the target protocol over a live kernel, a dump or a KDNET session.

Everything here was checked against pykd's source (pykd 0.3.4, kdlibcpp):

- memory: `loadBytes(addr, n)` is the one bulk read; it fails as a whole with
  `MemoryException` (no address attribute) when any byte is invalid.  We attach the address.
  Never `loadPtrs` (one read per element) nor `typedVar` field access (one read per field).
- layouts come from the target's own symbols (`typeInfo`), built once per type on first use.
  pykd names base types `UInt4B`, pointers `_KTHREAD*`, arrays `_KWAIT_BLOCK[4]`, bit fields
  `UInt4B:3`; anonymous members appear flattened, named members of unnamed types
  (`Tail.Overlay...`) are expanded into dotted names as in the shipped layouts; a
  multi-dimensional array is named in C order (`unsigned long long[4][2]`).  Two gaps of
  real symbols are bridged, each only where the symbols fall short: an enum the symbols lack
  (the 7 SP1 PDB has no `_KTHREAD_STATE`) takes the constants the shipped sets carry, and a
  member of a supplement type whose symbol type has another shape than the supplement says
  (`_KUSER_SHARED_DATA.InterruptTime` is a 12-byte `_KSYSTEM_TIME` in the PDB) is left out of
  the layout, so code reading it gets FieldNotFound rather than an address taken for a value.
- stacks: `getStack()` unwinds the implicit thread; `setImplicitThread()` switches it
  (`SetImplicitThreadDataOffset`, debugger state, not target state) and afterwards it goes
  back to the debugger's default (`setImplicitThread(0)`), or to the user's own choice.
- `bugCheckData()` is all zeros on a live kernel and raises `DbgException` on a dump without
  one: both are "no bug check".
- members real symbols carry that no layout holds (static and constant members of C++ types:
  no offset; arrays without a bound: no size) are skipped or sized 0, and said in `skipped`;
  every other pykd exception reaches the CLI as one line (`PykdTarget.errors`).
- standalone sessions: a symbol path is set when none is (`_use_symbols`), and a KDNET target
  this process broke in is resumed when the command ends (`release`).
- `findSymbol()` never raises: `mod!sym+1a3`, else `mod+3c`, else bare hex.
- an address the user types (irp, devstack) is the debugger's to evaluate: `expr()`.

No function that writes target memory or registers is used anywhere.
"""
import os
import re
import struct

from ..errors import MemoryFault, SymbolNotFound, TargetUnavailable, TypeNotFound, UsageError
from .base import BugCheck, Frame, Module, Target, processors_in_memory
from .layouts import Field, LayoutSet, TypeLayout, load_shipped, shipped_builds, supplement

# pykd's base type names -> the shipped layouts' names (same names, same decoding)
_BASE = {
    "Char": "char", "WChar": "wchar", "Int1B": "char", "UInt1B": "unsigned char",
    "Int2B": "short", "UInt2B": "unsigned short", "Int4B": "int", "UInt4B": "unsigned int",
    "Int8B": "long long", "UInt8B": "unsigned long long", "Long": "long", "ULong": "unsigned long",
    "Float": "f32", "Double": "double", "Bool": "bool", "Void": "void", "Hresult": "HRESULT",
    "NoType": "void",
}

BASE_TYPES = {
    "char": {"size": 1, "signed": True, "kind": "char"},
    "unsigned char": {"size": 1, "signed": False, "kind": "char"},
    "wchar": {"size": 2, "signed": True, "kind": "int"},
    "short": {"size": 2, "signed": True, "kind": "int"},
    "unsigned short": {"size": 2, "signed": False, "kind": "int"},
    "int": {"size": 4, "signed": True, "kind": "int"},
    "unsigned int": {"size": 4, "signed": False, "kind": "int"},
    "long": {"size": 4, "signed": True, "kind": "int"},
    "unsigned long": {"size": 4, "signed": False, "kind": "int"},
    "long long": {"size": 8, "signed": True, "kind": "int"},
    "unsigned long long": {"size": 8, "signed": False, "kind": "int"},
    "f32": {"size": 4, "signed": True, "kind": "float"},
    "double": {"size": 8, "signed": True, "kind": "float"},
    "bool": {"size": 1, "signed": False, "kind": "bool"},
    "HRESULT": {"size": 4, "signed": False, "kind": "int"},
    "void": {"size": 0, "signed": True, "kind": "void"},
}

# WDK typedefs that public symbols do not carry as types of their own: used only when the
# target's symbols lack the name (8.1 and later define KGUARDED_MUTEX as FAST_MUTEX).
TYPEDEFS = {"_KGUARDED_MUTEX": "_FAST_MUTEX"}

# Enums some builds' symbols lack although their kernels use the values: taken from the shipped
# layout sets only when the target's symbols have no such enum.  The 7 SP1 ntkrnlmp.pdb has no
# _KTHREAD_STATE (KTHREAD.State is a plain UCHAR there); the 8.1, 10 and 11 PDBs give the same
# values, which the shipped sets carry (the 7 SP1 set copies them from 8.1).
ENUMS_SYMBOLS_MAY_LACK = ("_KTHREAD_STATE",)

MAX_NESTING = 4          # dotted depth through unnamed member types (the shipped sets need 3)

_HEX = re.compile(r"^[0-9a-fA-F`]+$")
_DIMS = re.compile(r"^(.*?)((?:\[\d+\])+)$")
_DISP = re.compile(r"^(.*?)([+-])([0-9a-fA-F`]+)$")


def _scalar(typ):
    """Whether a layout type string decodes as one value (integer, pointer, enum)."""
    return typ.startswith(("ptr:", "enum:")) or (typ in BASE_TYPES and typ != "void")


def _unnamed(name):
    n = name.lower()
    return n.startswith("<") or "unnamed" in n or "anonymous" in n


def parse_find_symbol(text, address):
    """pykd's findSymbol text -> the protocol's `mod!sym+0xoff` / `mod+0xoff` / `0x...`."""
    text = (text or "").strip()
    if not text or _HEX.match(text):
        return "0x%x" % address
    m = _DISP.match(text)
    if m and m.group(1):
        head, sign, disp = m.group(1), m.group(2), int(m.group(3).replace("`", ""), 16)
        return "%s%s0x%x" % (head, sign, disp) if disp else head
    return text


class LiveLayouts(LayoutSet):
    """A LayoutSet read from the target's symbols through typeInfo, one type at a time."""

    def __init__(self, pykd, build, pointer_size, module="nt"):
        LayoutSet.__init__(self, build, pointer_size, {}, {}, dict(BASE_TYPES), {})
        self._pykd = pykd
        self._module = module
        self._missing = set()
        # (type, field, symbols' type, supplement's type): members left out for their shape
        self.mismatches = []
        self.enum_sources = {}    # enum -> where its constants came from when not the symbols
        self.type_sources = {}    # type -> where its layout came from when not the symbols
        self.skipped = []         # (type, member, why): static/constant members, undescribable ones

    def _type_info(self, name):
        try:
            return self._pykd.typeInfo("%s!%s" % (self._module, name))
        except self._pykd.DbgException:
            return None

    def _type_string(self, ti):
        p = self._pykd
        if ti.isBitField():
            return _BASE.get(ti.name().split(":")[0], "unsigned long")
        if ti.isPointer():
            try:
                inner = ti.deref()
            except p.DbgException:
                return "ptr:void"
            if inner.isFunction():
                return "ptr:function"
            return "ptr:" + self._type_string(inner)
        if ti.isArray():
            elem = ti.deref()
            esize = self._size(elem)
            n = self._size(ti) // esize if esize else 0         # incomplete: [0]
            inner = self._type_string(elem)
            if elem.isArray():        # C order: ULONGLONG Cycles[4][2] is 4 arrays of 2
                m = _DIMS.match(inner)
                return "%s[%d]%s" % (m.group(1), n, m.group(2))
            return "%s[%d]" % (inner, n)
        if ti.isEnum():
            return "enum:" + ti.name()
        if ti.isFunction():
            return "function"
        if ti.isBase() or ti.name() in _BASE:
            return _BASE.get(ti.name(), ti.name())
        return ti.name()

    def _build(self, name, ti):
        p = self._pykd
        fields = {}
        work = [("", 0, ti, 0)]
        while work:
            prefix, base, t, depth = work.pop()
            for fname, ft in t.fields():
                full = prefix + fname
                if self._no_offset(t, fname):
                    continue
                try:
                    off = base + t.fieldOffset(fname)
                    bits = (ft.bitOffset(), ft.bitWidth()) if ft.isBitField() else (None, None)
                    typ = self._type_string(ft)
                    size = self._size(ft)
                except p.DbgException as e:
                    # a member real symbols describe in a way no layout can hold: said, not fatal
                    self.skipped.append((name, full, "%s: %s" % (type(e).__name__, str(e).strip())))
                    continue
                fields.setdefault(full, Field(full, off, size, typ, bits[0], bits[1]))
                if (ft.isUserDefined() and not ft.isPointer() and not ft.isArray()
                        and _unnamed(ft.name()) and depth < MAX_NESTING):
                    work.append((full + ".", off, ft, depth + 1))
        self._drop_other_shapes(name, fields)
        return TypeLayout(name, self._size(ti), fields)

    def _no_offset(self, t, fname):
        """A static or constant member (C++ symbols have them): no offset in the structure;
        asking raises TypeException "static field has no offset" (kdlib udtfield.h:52-58).
        pykd tells them by typeInfo.isStaticField/isConstField (pykd pymod.cpp:931-937)."""
        p = self._pykd
        for query in ("isStaticField", "isConstField"):
            ask = getattr(t, query, None)
            if ask is None:
                continue
            try:
                if ask(fname):
                    self.skipped.append((t.name(), fname, query[2:].replace("Field", " member")))
                    return True
            except p.DbgException:
                continue             # not answerable: fieldOffset below says what it is
        return False

    def _size(self, ti):
        """size() of a type, 0 for an incomplete one (an array without a bound: kdlib's
        TypeInfoIncompleteArray, typeinfoimp.h:1034, has no size)."""
        try:
            return ti.size()
        except self._pykd.DbgException:
            return 0

    def _drop_other_shapes(self, name, fields):
        """The supplement describes types the PDB extracts lack, with the shape the analyses
        read.  A member the symbols give another shape (a structure where the supplement has
        an integer, or the reverse) is left out: a view would decode the structure as its
        address, a value no analysis can tell from a real one."""
        expected = supplement()["structs"].get(name)
        if not expected:
            return
        wanted = dict(expected.get("fields", {}))
        wanted.update(expected.get("nested_fields", {}))
        for fname, sf in sorted(wanted.items()):
            lf = fields.get(fname)
            if lf is not None and _scalar(lf.type) != _scalar(sf["type"]):
                del fields[fname]
                self.mismatches.append((name, fname, lf.type, sf["type"]))

    def layout(self, name):
        name = name.split("!")[-1]
        t = self._types.get(name)
        if t is not None:
            return t
        if name not in self._missing:
            ti = self._type_info(name)
            if ti is None and name in TYPEDEFS:
                ti = self._type_info(TYPEDEFS[name])
            if ti is not None:
                t = self._types[name] = self._build(name, ti)
                return t
            sup = supplement()["structs"].get(name)
            if sup is not None:
                # a type the symbols lack (e.g. _KWAIT_CHAIN_ENTRY, which public PDBs do not
                # all carry): the supplement's layout, with its source said in type_sources
                t = self._types[name] = TypeLayout.from_json(name, sup)
                self.type_sources[name] = "layouts/supplement.json (not in the target's symbols)"
                return t
            self._missing.add(name)
        raise TypeNotFound("%s!%s" % (self._module, name))

    def enum(self, name):
        name = name.split("!")[-1]
        e = self.enums.get(name)
        if e is None:
            ti = self._type_info(name)
            e = None
            if ti is not None and ti.isEnum():
                e = {fname: int(v) for fname, v in ti.fields()}
            elif name in ENUMS_SYMBOLS_MAY_LACK:
                e = self._shipped_enum(name)
            if e is None:
                raise TypeNotFound("%s!%s" % (self._module, name))
            self.enums[name] = e
        return e

    def _shipped_enum(self, name):
        """Constants of an enum the symbols lack, from the shipped set of this build if there
        is one, else from the first that carries it; or None."""
        builds = shipped_builds()
        for build in sorted(builds, key=lambda b: b != self.build):     # this build's set first
            try:
                e = load_shipped(build).enum(name)
            except TypeNotFound:
                continue
            self.enum_sources[name] = "shipped layouts of %s (not in the target's symbols)" % build
            return dict(e)
        return None

    def to_json(self):
        d = LayoutSet.to_json(self)
        d["structs"] = {n: t.to_json() for n, t in self._types.items()}
        return d


class PykdTarget(Target):
    """The protocol over the pykd session already open in `pykd` (a module)."""

    def __init__(self, pykd, name):
        self.pykd = pykd
        self.name = name
        self.live = not pykd.isDumpAnalyzing()
        self._layouts = None
        self._modules = []       # Modules found so far: most look-ups hit one of these
        self._restore = None     # the implicit thread to go back to after an unwind (0: default)
        self.errors = (pykd.DbgException,)     # pykd's exceptions, for the CLI's one-line errors
        self.symbol_path = None  # a standalone session's symbol path, once checked
        self.broken_in = False   # a kernel connection this process broke in (attachKernel)

    # -- memory ------------------------------------------------------------------------------

    def read(self, address, size):
        try:
            return bytes(self.pykd.loadBytes(address, size))
        except self.pykd.MemoryException:
            raise MemoryFault(address, size)

    # -- symbols -----------------------------------------------------------------------------

    def symbol(self, name):
        if "!" not in name:
            name = "nt!" + name
        try:
            return int(self.pykd.getOffset(name))
        except self.pykd.DbgException:
            raise SymbolNotFound(name)

    def describe(self, address):
        return parse_find_symbol(self.pykd.findSymbol(address), address)

    def evaluate_expression(self, text):
        """The value of a debugger expression as the user typed it (`@$t0`, `poi(@rcx+8)`,
        `nt!IopRootDeviceNode`, MASM operators), by the debugger's own evaluator:
        `pykd.expr(expression, cplusplus=False)` (pykd pymod.cpp:212, pydbgeng.cpp:14) is
        kdlib::evaluate (kdlib win/dbgeng.cpp:597-665): IDebugControl::EvaluateWide in MASM
        syntax, an integer back; a failure is DbgEngException "Call IDebugControl::Evaluate
        failed\nHRESULT 0x..." (kdlib win/exceptions.h:11-27), raised in Python as
        pykd.DbgException (pykd dbgexcept.h:82-112).  UsageError, one line, when it is refused
        or is no integer."""
        try:
            value = self.pykd.expr(text)
        except self.pykd.DbgException as e:
            raise UsageError("the debugger cannot evaluate %r: %s" % (text, " ".join(str(e).split()) or
                                                                   type(e).__name__))
        if isinstance(value, bool) or not isinstance(value, int):
            raise UsageError("%r is %r to the debugger, not an address" % (text, value))
        return value & 0xFFFFFFFFFFFFFFFF

    def module_at(self, address):
        for m in self._modules:
            if m.base <= address < m.end:
                return m
        try:
            mod = self.pykd.module(address)
        except self.pykd.DbgException:
            return None
        m = Module(mod.name(), mod.image(), int(mod.begin()), int(mod.end()))
        self._modules.append(m)
        return m

    def layouts(self):
        if self._layouts is None:
            p = self.pykd
            try:
                v = p.getSystemVersion()
                build = str(v.buildString) or "build %d" % v.buildNumber
            except p.DbgException:
                build = "unknown build"
            self._layouts = LiveLayouts(p, build, int(p.ptrSize()))
        return self._layouts

    # -- processors, stacks, bug check -------------------------------------------------------

    def processors(self):
        return processors_in_memory(self) or []

    def stack(self, thread):
        """Switch the implicit thread, unwind, switch back.  In kernel mode setCurrentThread is
        setImplicitThread, i.e. SetImplicitThreadDataOffset (kdlib win/dbgeng.cpp:1445-1455,
        1486-1492).  Back means the debugger's default (offset 0: "the implicit thread for the
        current process is set to the default implicit thread", DbgEng's
        SetImplicitThreadDataOffset), unless the user had chosen one (`.thread X`): that one is
        restored.  Writing back what getImplicitThread returned would pin the default as an
        explicit choice the debugger then keeps."""
        p = self.pykd
        restore = self._restore_to()
        try:
            p.setImplicitThread(thread)
            frames = p.getStack()
            return [Frame(int(f.ip), int(f.ret), int(f.sp), int(f.fp)) for f in frames]
        except p.DbgException:
            return []
        finally:
            p.setImplicitThread(restore)

    def _restore_to(self):
        """What the implicit thread goes back to after an unwind: 0 (the default) when the
        session's implicit thread was the default one, else the user's thread.  Found once."""
        if self._restore is None:
            p = self.pykd
            before = int(p.getImplicitThread())
            p.setImplicitThread(0)
            default = int(p.getImplicitThread())
            self._restore = 0 if before == default else before
            if self._restore:
                p.setImplicitThread(before)
        return self._restore

    def release(self, leave_broken=False, notify=None):
        """End of a command on a kernel connection this process broke in: detach, which
        resumes the target (pykd detachAllProcesses -> kdlib win/dbgeng.cpp:347-358,
        IDebugClient::DetachProcesses, "resuming all their threads").  Not go(): pykd's go
        waits in WaitForEvent(INFINITE) for the next break (kdlib win/dbgeng.cpp:88-120,
        686-701), so the command would never end.  Nothing happens inside WinDbg or on a dump."""
        notify = notify or (lambda text: None)
        if not self.broken_in:
            return
        self.broken_in = False
        if leave_broken:
            notify("the target stays broken in (--leave-broken): resume it from a debugger (g)")
            return
        try:
            self.pykd.detachAllProcesses()
        except self.pykd.DbgException as e:
            notify("could not resume the target (%s): it is still broken in; connect a debugger "
                   "and type g" % (str(e).strip() or type(e).__name__))
            return
        notify("detached: the target runs again")

    def symbol_hint(self):
        """For a missing kernel type: what to set, where a standalone session chose symbols."""
        if self.symbol_path is None:
            return "check the debugger's symbol path (.sympath, .reload)"
        return "symbol path %s: %s" % (self.symbol_path, SYMBOL_ADVICE)

    def bugcheck(self):
        try:
            data = self.pykd.bugCheckData()
        except self.pykd.DbgException:
            return None                      # a dump without bug check data
        code = int(data[0])                  # a live kernel: zeros (pykd pydbgeng.cpp:179-197)
        if not code:
            return None
        args = [int(a) for a in data[1:5]]
        return BugCheck(code, args + [0] * (4 - len(args)))


# -- opening a session ------------------------------------------------------------------------

def import_pykd(why):
    try:
        import pykd
    except ImportError as e:
        raise TargetUnavailable("%s needs pykd, which runs on Windows only (pip install pykd): %s"
                                % (why, e))
    return pykd


def _require_kernel(pykd, name):
    if not pykd.isKernelDebugging():
        raise TargetUnavailable("%s is not a kernel target: these commands read kernel structures"
                                % name)


# Microsoft's public symbol server, cached locally: what `.symfix` sets
SYMBOL_SERVER = "https://msdl.microsoft.com/download/symbols"


def default_symbol_path():
    cache = os.path.join(os.environ.get("LOCALAPPDATA") or os.path.expanduser("~"), "pykd_ext", "symbols")
    return "srv*%s*%s" % (cache, SYMBOL_SERVER)


def _use_symbols(pykd, target, symbol_path, notify):
    """A standalone session gets kernel types only from a symbol path, and pykd sets none
    itself (getSymbolPath/setSymbolPath: pykd pymod.cpp:614-618, kdlib win/sympath.cpp:22-45;
    DbgEng starts from _NT_SYMBOL_PATH).  --symbol-path wins; with none set, Microsoft's server
    with a local cache, said on stderr.  Then nt's symbols are reloaded from it (module.reload:
    IDebugSymbols::Reload, kdlib win/dbgmod.cpp:294) and the kernel's types checked: without
    them every command would end "unusable target"; this says what to set instead."""
    current = (pykd.getSymbolPath() or "").strip()
    if symbol_path is not None:
        path = symbol_path
    elif current:
        path = None
    else:
        path = default_symbol_path()
        notify("no symbol path set (_NT_SYMBOL_PATH is empty): using %s; --symbol-path or "
               "_NT_SYMBOL_PATH sets another" % path)
    if path is not None:
        pykd.setSymbolPath(path)
        try:
            pykd.module("nt").reload()
        except pykd.DbgException as e:
            raise TargetUnavailable("%s: cannot reload nt's symbols from %s: %s"
                                    % (target.name, path, str(e).strip() or type(e).__name__))
    target.symbol_path = path or current
    try:
        pykd.typeInfo("nt!_KTHREAD")
    except pykd.DbgException:
        raise TargetUnavailable("%s: no kernel types (nt!_KTHREAD) with the symbol path %s: %s"
                                % (target.name, target.symbol_path, SYMBOL_ADVICE))


SYMBOL_ADVICE = ("set --symbol-path or _NT_SYMBOL_PATH to a path holding ntkrnlmp.pdb, e.g. "
                 "srv*C:\\Symbols*" + SYMBOL_SERVER)


def open_dump(path, notify=None, symbol_path=None):
    notify = notify or (lambda text: None)
    pykd = import_pykd("--dump")
    try:
        pykd.loadDump(path)
    except pykd.DbgException as e:
        raise TargetUnavailable("%s: cannot load the dump: %s" % (path, str(e).strip() or type(e).__name__))
    _require_kernel(pykd, path)
    target = PykdTarget(pykd, path)
    _use_symbols(pykd, target, symbol_path, notify)
    return target


def open_kernel(connection, notify, symbol_path=None):
    pykd = import_pykd("--kdnet")
    notify("waiting for the target to connect (%s); attachKernel blocks until it does and "
           "Ctrl+C cannot interrupt that wait (close the console to give up)"
           % (connection or "local kernel"))
    try:
        pykd.attachKernel(connection)
    except pykd.DbgException as e:
        raise TargetUnavailable("%s: cannot attach: %s" % (connection, str(e).strip() or type(e).__name__))
    # attachKernel turns the initial break on and waits for it: the target is stopped now
    # (kdlib win/dbgeng.cpp:471-488, setEngBreakOption 210-235)
    target = PykdTarget(pykd, "kernel " + connection if connection else "local kernel")
    target.broken_in = bool(connection)          # the local kernel (kd -kl) is never stopped
    if target.broken_in:
        notify("connected: the target is broken in (stopped) while the command reads it; it is "
               "resumed when the command ends (--leave-broken keeps it stopped)")
    try:
        _require_kernel(pykd, connection)
        _use_symbols(pykd, target, symbol_path, notify)
    except TargetUnavailable:
        target.release(False, notify)
        raise
    return target


def current_session():
    """The debugger session this code runs inside (WinDbg/KD with `!py`), or None."""
    try:
        import pykd
    except ImportError:
        return None
    if not pykd.isWindbgExt():
        return None
    _require_kernel(pykd, "this debugger session")
    name = "dump" if pykd.isDumpAnalyzing() else "live kernel"
    return PykdTarget(pykd, "debugger session (%s)" % name)
