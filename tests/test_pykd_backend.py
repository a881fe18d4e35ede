"""The pykd backend through a fake pykd (tests/fake_pykd.py) backed by mock targets.

The fake answers typeInfo from real-shaped symbols (the builds' ISF in tests/data/isf and the
real-symbol extras there), not from the trimmed layouts: where our layouts or the supplement say
otherwise than the PDB, these tests see it.
"""
import gzip
import io
import json
import os
import re
import sys

import pytest

from conftest import BUILDS, MOCKS, WIN7, WIN10, mock, run_cli
from fake_pykd import ISF_DIR, FakePykd, SymbolException, TypeException
from pykd_ext.errors import MemoryFault, SymbolNotFound
from pykd_ext.mock.builder import ScenarioBuilder
from pykd_ext.target.cache import CachedTarget
from pykd_ext.target.layouts import load_shipped, supplement
from pykd_ext.target.mock import MockTarget
from pykd_ext.target.pykd_backend import PykdTarget, parse_find_symbol

SHIPPED = sorted(n[:-len(".json.gz")] for n in os.listdir(MOCKS) if n.endswith(".json.gz"))

# the types the analyses read, and a few more the coming commands will
USED_TYPES = ["_KTHREAD", "_ETHREAD", "_EPROCESS", "_KPROCESS", "_ERESOURCE", "_OWNER_ENTRY",
              "_KWAIT_BLOCK", "_DISPATCHER_HEADER", "_KMUTANT", "_FAST_MUTEX", "_KEVENT",
              "_KSEMAPHORE", "_KUSER_SHARED_DATA", "_DEVICE_OBJECT", "_DRIVER_OBJECT", "_IRP",
              "_IO_STACK_LOCATION", "_KPRCB", "_KDPC", "_LIST_ENTRY", "_UNICODE_STRING"]


SYMBOLS = "srv*C:\\Symbols*https://msdl.microsoft.com/download/symbols"


@pytest.fixture
def fake(monkeypatch):
    """A standalone pykd whose user has set _NT_SYMBOL_PATH, as the README asks."""
    monkeypatch.setenv("_NT_SYMBOL_PATH", SYMBOLS)
    f = FakePykd()
    monkeypatch.setitem(sys.modules, "pykd", f)
    return f


def backend(path):
    f = FakePykd(MockTarget.load(path))
    return f, PykdTarget(f, path)


SUPPLEMENT_TYPES = sorted(supplement()["structs"])

# Where the supplement (pykd_ext/layouts/supplement.json) and the public PDB differ, and why
# that is known.  Any other difference fails the test below.
SUPPLEMENT_VS_SYMBOLS = {
    ("_KUSER_SHARED_DATA", "size"):
        "0x5f0 is the 7 SP1 size; 8.1 and later are larger and the extras have no "
        "build-attributed size for them (they report the end of the last field listed)",
    ("_OBJECT_HEADER_NAME_INFO", "Directory"):
        "_OBJECT_DIRECTORY* in the PDB, void* in the supplement: the same pointer",
    ("_OBJECT_HEADER_CREATOR_INFO", "Reserved"):
        "named Reserved on 7 and Reserved1 later; the extras list neither and nothing reads it",
}


def _live(build):
    b = ScenarioBuilder(build)
    b.process("System", pid=4)
    f = FakePykd(b.target())
    return f, PykdTarget(f, "t").layouts()


@pytest.mark.parametrize("build", BUILDS)
def test_layouts_from_type_info_match_the_public_symbols(build):
    f, live = _live(build)
    shipped = load_shipped(build)
    for name in USED_TYPES:
        if name in SUPPLEMENT_TYPES:
            continue                 # not from the PDB extracts: see the next test
        a, s = live.layout(name), shipped.layout(name)
        assert a.size == s.size, name
        for fname, sf in s.fields.items():
            lf = a.fields.get(fname)
            assert lf is not None, (name, fname)
            assert (lf.offset, lf.size, lf.bit_position, lf.bit_length) == \
                (sf.offset, sf.size, sf.bit_position, sf.bit_length), (name, fname)
            if not sf.type.startswith(("__anonymous", "__unnamed")):
                assert lf.type == sf.type, (name, fname, lf.type, sf.type)
    assert live.enum("_KTHREAD_STATE")["Waiting"] == 5
    assert live.enum_names("_KWAIT_REASON")[shipped.enum("_KWAIT_REASON")["WrResource"]] == "WrResource"
    # dotted names through unnamed members, as the IRP and DPC commands will need them
    assert live.layout("_IRP").offset("Tail.Overlay.CurrentStackLocation") == \
        shipped.layout("_IRP").offset("Tail.Overlay.CurrentStackLocation")


@pytest.mark.parametrize("build", BUILDS)
def test_the_supplement_differs_from_real_symbols_only_where_known(build):
    f, live = _live(build)
    shipped = load_shipped(build)
    seen = set()
    for name in SUPPLEMENT_TYPES:
        a, s = live.layout(name), shipped.layout(name)
        if a.size != s.size:
            seen.add((name, "size"))
        for fname, sf in s.fields.items():
            lf = a.fields.get(fname)
            if lf is None or (lf.offset, lf.size, lf.type) != (sf.offset, sf.size, sf.type):
                seen.add((name, fname))
    assert seen <= set(SUPPLEMENT_VS_SYMBOLS), sorted(seen - set(SUPPLEMENT_VS_SYMBOLS))
    # a member whose symbol type has another shape is left out, and said so, never decoded
    for name, fname, real, ours in live.mismatches:
        assert not live.layout(name).has(fname)
        assert (name, fname) in SUPPLEMENT_VS_SYMBOLS
    assert live.layout("_KUSER_SHARED_DATA").offset("TickCountQuad") == 0x320
    # the supplement types InterruptTime as the PDB does: no mismatch, the field kept
    assert live.layout("_KUSER_SHARED_DATA").field("InterruptTime").type == "_KSYSTEM_TIME"
    assert not live.mismatches


def _isf(build):
    with gzip.open(os.path.join(ISF_DIR, build + ".isf.json.gz"), "rt") as f:
        return json.load(f)


@pytest.mark.parametrize("build", BUILDS)
def test_the_fake_gives_types_as_the_public_symbols_shape_them(build):
    f, live = _live(build)
    shipped = load_shipped(build)
    # _KUSER_SHARED_DATA as the PDB types it: the times are 12-byte _KSYSTEM_TIMEs
    kusd = f.typeInfo("nt!_KUSER_SHARED_DATA")
    members = dict(kusd.fields())
    for fname, off in (("InterruptTime", 0x8), ("SystemTime", 0x14), ("TickCount", 0x320)):
        assert (members[fname].name(), members[fname].size(), kusd.fieldOffset(fname)) == \
            ("_KSYSTEM_TIME", 12, off)
    assert (members["TickCountQuad"].name(), kusd.fieldOffset("TickCountQuad")) == ("UInt8B", 0x320)
    kst = f.typeInfo("nt!_KSYSTEM_TIME")
    assert [(n, t.name(), kst.fieldOffset(n)) for n, t in kst.fields()] == \
        [("LowPart", "ULong", 0), ("High1Time", "Long", 4), ("High2Time", "Long", 8)]
    assert kst.size() == 12
    assert live.layout("_KSYSTEM_TIME").offset("High2Time") == 8
    # what the ISF has and our trimmed layouts do not is there too
    assert not shipped.has_type("_KAPC")
    apc, isf_apc = f.typeInfo("nt!_KAPC"), _isf(build)["user_types"]["_KAPC"]
    assert apc.fieldOffset("ApcListEntry") == isf_apc["fields"]["ApcListEntry"]["offset"]
    assert live.layout("_KAPC").has("SystemArgument2")
    # _ERESOURCE: every offset as the ISF gives it; the waiters typed as the PDB types them
    isf = _isf(build)["user_types"]["_ERESOURCE"]
    er = f.typeInfo("nt!_ERESOURCE")
    assert er.size() == isf["size"] == 0x68
    assert {n: er.fieldOffset(n) for n, _ in er.fields()} == \
        {n: g["offset"] for n, g in isf["fields"].items()}
    assert (er.fieldOffset("OwnerEntry"), dict(er.fields())["OwnerEntry"].name()) == (0x30, "_OWNER_ENTRY")
    assert er.fieldOffset("NumberOfExclusiveWaiters") == 0x4c
    waiters = dict(er.fields())["ExclusiveWaiters"].name()
    assert waiters == ("_KEVENT*" if build in BUILDS[:2] else "Void*")
    # pykd's exceptions: an unknown type is a symbol error, an unknown field a type error
    with pytest.raises(SymbolException):
        f.typeInfo("nt!_NO_SUCH_TYPE")
    with pytest.raises(TypeException):
        er.fieldOffset("NoSuchField")


def test_a_typedef_the_symbols_lack_is_the_wdk_one_and_a_missing_type_is_missing():
    f = FakePykd(MockTarget.load(mock("eresource_deadlock_win10")))
    live = PykdTarget(f, "t").layouts()
    assert live.has_type("_KGUARDED_MUTEX")                     # WDK: FAST_MUTEX on 8.1+
    assert live.layout("_KGUARDED_MUTEX").size == load_shipped(WIN10).layout("_FAST_MUTEX").size
    assert not live.has_type("_NO_SUCH_TYPE")
    f7 = FakePykd(MockTarget.load(mock("eresource_deadlock_win7")))
    assert PykdTarget(f7, "t").layouts().layout("_KGUARDED_MUTEX").has("Gate")   # its own type on 7


def test_an_enum_the_symbols_lack_comes_from_the_shipped_sets_and_no_other():
    f7, live7 = _live(WIN7)
    with pytest.raises(SymbolException):
        f7.typeInfo("nt!_KTHREAD_STATE")                  # the 7 SP1 PDB has none
    assert live7.enum("_KTHREAD_STATE") == load_shipped(WIN7).enum("_KTHREAD_STATE")
    assert WIN7 in live7.enum_sources["_KTHREAD_STATE"]
    assert not live7.has_type("_POP_IRP_DATA")           # nor this: still missing, not borrowed
    f10, live10 = _live(WIN10)
    assert live10.enum("_KTHREAD_STATE")["WaitingForProcessInSwap"] == 9
    assert live10.enum_sources == {}                      # the 10 PDB has it


def test_a_multi_dimensional_array_is_named_in_c_order():
    f, live = _live(WIN10)
    cycles = dict(f.typeInfo("nt!_KPRCB").fields())["Cycles"]
    assert (cycles.name(), cycles.size(), cycles.deref().name()) == ("UInt8B[4][2]", 64, "UInt8B[2]")
    assert live.layout("_KPRCB").field("Cycles").type == "unsigned long long[4][2]"


def test_read_is_one_load_bytes_and_a_fault_carries_the_address():
    f, t = backend(mock("eresource_deadlock"))
    base = t.symbol("nt!PsActiveProcessHead")
    assert len(t.read(base, 16)) == 16
    assert f.calls["loadBytes"] == 1
    with pytest.raises(MemoryFault) as e:
        t.read(0x10000, 8)
    assert e.value.address == 0x10000
    with pytest.raises(SymbolNotFound):
        t.symbol("nt!NoSuchSymbol")


def test_find_symbol_text_becomes_the_protocols_format():
    assert parse_find_symbol("nt!KeWaitForSingleObject+1a3", 1) == "nt!KeWaitForSingleObject+0x1a3"
    assert parse_find_symbol("nt!KiBugCheckData", 1) == "nt!KiBugCheckData"
    assert parse_find_symbol("TestDriver+3c", 1) == "TestDriver+0x3c"
    assert parse_find_symbol("fffff880`03000000", 0xfffff88003000000) == "0xfffff88003000000"
    assert parse_find_symbol("fffff88003000000", 0xfffff88003000000) == "0xfffff88003000000"
    mt = MockTarget.load(mock("eresource_deadlock"))
    t = PykdTarget(FakePykd(mt), "t")
    for addr in [a for a, _ in mt._by_addr] + [a + 0x3c for a, _ in mt._by_addr] + [0x1234, 0xfffff88003000040]:
        assert t.describe(addr) == mt.describe(addr)


def test_stack_switches_the_implicit_thread_and_restores_it():
    f, t = backend(mock("eresource_deadlock"))
    mt = f.target
    thread = next(iter(mt._stacks))
    before = f.implicit_thread
    frames = t.stack(thread)
    assert [x.ip for x in frames] == [x.ip for x in mt.stack(thread)]
    assert f.implicit_thread == before
    assert t.stack(0x10000) == []                       # unreadable thread: no stack, no error
    assert f.implicit_thread == before


def test_bug_check_data_raising_means_none():
    f, t = backend(mock("eresource_deadlock"))
    assert t.bugcheck() is None
    b = ScenarioBuilder(WIN7)
    b.bugcheck(0x9F, 4, 0x258, 0xfffffa8004f46040, 0xfffff80000b9c3d0)
    t2 = PykdTarget(FakePykd(b.target()), "t")
    bc = t2.bugcheck()
    assert (bc.code, bc.args) == (0x9F, (4, 0x258, 0xfffffa8004f46040, 0xfffff80000b9c3d0))


def test_processors_come_from_ki_processor_block():
    b = ScenarioBuilder(WIN10)
    prcbs = [b.processor(i) for i in range(3)]
    t = PykdTarget(FakePykd(b.target()), "t")
    assert [(p.index, p.prcb) for p in t.processors()] == list(enumerate(prcbs))


def test_modules_are_found_once_per_module():
    f, t = backend(mock("eresource_deadlock"))
    nt = f.target.modules[0]
    assert t.module_at(nt.base + 0x10).name == nt.name
    assert t.module_at(nt.base + 0x20).base == nt.base
    assert f.calls["module"] == 1
    assert t.module_at(0x1000) is None


# -- end to end through the CLI ----------------------------------------------------------------

@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize("command", ["deadlock", "powerirps", "dpcs", "timerres"])
def test_dump_through_pykd_prints_what_the_mock_target_gives(fake, name, fmt, command):
    """Through the fake pykd, whose types are the real symbols' (InterruptTime a 12-byte
    _KSYSTEM_TIME, no _KWAIT_CHAIN_ENTRY), every command prints what the mock target gives:
    power IRP ages included."""
    direct = run_cli(command, "--target", mock(name), "--format", fmt)
    through = run_cli(command, "--dump", mock(name), "--format", fmt)
    assert through == direct
    assert fake.forbidden == []


def _run_counting(monkeypatch, *argv):
    """Run the CLI; return (exit code, the CachedTarget it used)."""
    seen = {}
    real = CachedTarget.__init__

    def spy(self, backend, *a, **kw):
        real(self, backend, *a, **kw)
        seen["cache"] = self
    monkeypatch.setattr(CachedTarget, "__init__", spy)
    code, out, err = run_cli(*argv)
    assert code in (0, 3), err                      # 3: a corrupted target's partial results
    return seen["cache"]


def _within_budget(fake, stats):
    """One loadBytes per page touched, plus one exact read around each page that faulted;
    no per-element or per-field primitive at all."""
    naive = sum(fake.calls[n] for n in ("typedVar", "ptrPtr", "ptrQWord", "ptrDWord", "loadPtrs"))
    return (naive == 0 and fake.calls["loadBytes"] == stats.backend_calls
            and fake.calls["loadBytes"] <= len(stats.pages) + stats.faults)


@pytest.mark.parametrize("name", SHIPPED)
def test_no_write_no_per_field_read_and_the_thread_restored(fake, name, monkeypatch):
    start = fake.implicit_thread
    cache = _run_counting(monkeypatch, "deadlock", "--dump", mock(name))
    assert fake.forbidden == [] and fake.calls["dbgCommand"] == 0
    assert fake.implicit_thread == start
    assert _within_budget(fake, cache.stats)
    assert fake.calls["getStack"] == cache.stats.stack_calls


def test_the_budget_catches_a_backend_that_reads_field_by_field(fake, monkeypatch):
    def per_field(self, address, size):          # what a typedVar-style backend costs
        out = b""
        for a in range(address, address + size, 8):
            try:
                out += bytes(self.pykd.loadBytes(a, min(8, address + size - a)))
            except self.pykd.MemoryException:
                raise MemoryFault(a, size)
        return out
    monkeypatch.setattr(PykdTarget, "read", per_field)
    cache = _run_counting(monkeypatch, "deadlock", "--dump", mock("eresource_deadlock"))
    assert not _within_budget(fake, cache.stats)
    assert fake.calls["loadBytes"] > 20 * len(cache.stats.pages)


def test_kdnet_says_it_is_waiting_then_attaches(fake):
    fake.kernels["net:port=50000,key=1.2.3.4"] = mock("eresource_deadlock")
    code, out, err = run_cli("deadlock", "--kdnet", "net:port=50000,key=1.2.3.4")
    assert code == 0
    assert "waiting for the target to connect (net:port=50000,key=1.2.3.4)" in err
    assert "DEADLOCK 1: 2 threads, 2 locks" in out
    assert out.splitlines()[0].startswith("deadlock -- kernel net:port=50000,key=1.2.3.4 (")


def test_kdnet_refused_is_one_line_exit_2(fake):
    code, out, err = run_cli("deadlock", "--kdnet", "net:port=1,key=1.2.3.4")
    assert code == 2 and out == ""
    assert err.splitlines()[-1].startswith("pykd-ext: net:port=1,key=1.2.3.4: cannot attach:")


def test_dump_that_does_not_load_is_one_line_exit_2(fake, tmp_path):
    bad = tmp_path / "MEMORY.DMP"
    bad.write_bytes(b"PAGEDU64" + b"\0" * 100)
    code, out, err = run_cli("deadlock", "--dump", str(bad))
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert "cannot load the dump" in err


def test_without_pykd_the_dump_option_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "pykd", None)          # import pykd -> ImportError
    code, out, err = run_cli("deadlock", "--dump", "C:\\MEMORY.DMP")
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert "--dump needs pykd, which runs on Windows only" in err


def test_no_target_outside_windbg_is_one_line_exit_2(fake):
    code, out, err = run_cli("deadlock")
    assert code == 2 and len(err.splitlines()) == 1
    assert "no target" in err


def test_ctrl_break_while_unwinding_keeps_what_was_found(fake, monkeypatch):
    fake.target = MockTarget.load(mock("eresource_deadlock"))
    fake.windbg = True
    start = fake.implicit_thread
    calls = {"n": 0}
    real = fake.getStack

    def get_stack(inlineFrames=False):
        calls["n"] += 1
        if calls["n"] == 2:
            raise SystemExit("CTRL+BREAK")                   # what the bootstrapper raises
        return real(inlineFrames)
    monkeypatch.setattr(fake, "getStack", get_stack)
    code, out, err = run_cli("deadlock")
    assert code == 3                                              # partial results
    assert out.splitlines()[1].startswith("INTERRUPTED (Ctrl+Break): partial results")
    assert "interrupted (CTRL+BREAK)" in out
    assert "DEADLOCK 1: 2 threads, 2 locks" in out                # the cycle is already known
    assert fake.implicit_thread == start


# -- inside WinDbg: DML --------------------------------------------------------------------------

class DebuggerOut(io.StringIO):
    """pykd's sys.stdout inside WinDbg: write() and writedml()."""

    def __init__(self):
        io.StringIO.__init__(self)
        self.dml = []

    def writedml(self, text):
        self.dml.append(text)


def _strip_dml(text):
    text = re.sub(r"</?(link|col|b)( [^>]*)?>", "", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&")


def test_inside_windbg_output_is_dml_with_links_and_the_same_text(fake):
    from pykd_ext.cli import main
    fake.target = MockTarget.load(mock("eresource_deadlock"))
    fake.windbg = True
    out, err = DebuggerOut(), io.StringIO()
    assert main(["deadlock"], out=out, err=err) == 0
    dml = "".join(out.dml)
    assert out.getvalue() == ""                              # everything went through writedml
    assert '<link cmd="!thread 0xfffffa8000c0bb30">0xfffffa8000c0bb30</link>' in dml
    assert '<link cmd="dt nt!_ERESOURCE 0xfffffa8000c0b348">0xfffffa8000c0b348</link>' in dml
    assert '<link cmd="!devstack 0xfffffa8000c0b190">0xfffffa8000c0b190</link>' in dml
    assert '<col fg="changed"><b>DEADLOCK 1: 2 threads, 2 locks</b></col>' in dml
    assert "nt!KeWaitForSingleObject+0x19f &lt; nt!ExpWaitForResource" in dml
    plain = run_cli("deadlock", "--dump", mock("eresource_deadlock"))[1]
    assert _strip_dml(dml) == plain.replace(mock("eresource_deadlock"), "debugger session (dump)")


def test_no_color_inside_windbg_is_plain_text(fake):
    from pykd_ext.cli import main
    fake.target = MockTarget.load(mock("eresource_deadlock"))
    fake.windbg = True
    out = DebuggerOut()
    assert main(["deadlock", "--no-color"], out=out, err=io.StringIO()) == 0
    assert out.dml == [] and "<link" not in out.getvalue()
    assert "DEADLOCK 1" in out.getvalue()


def test_recursion_limit_of_the_bootstrapper(fake):
    """!py sets sys.setrecursionlimit(500): a 300-thread wait chain must still be analysed."""
    b = ScenarioBuilder(WIN10)
    sysp = b.process("System", pid=4)
    threads = [b.thread(sysp, tid=8 + 4 * i, start="nt!ExpWorkerThread",
                        frames=["nt!KeWaitForSingleObject+0x19f"]) for i in range(300)]
    for i, t in enumerate(threads[:-1]):
        b.wait_on(t, [b.mutant(owner=threads[i + 1])], "Executive")
    b.wait_on(threads[-1], [b.event()], "Executive")
    fake.target = b.target()
    fake.windbg = True
    depth = len(__import__("inspect").stack())
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(500 + depth)
    try:
        out = DebuggerOut()
        from pykd_ext.cli import main
        code = main(["deadlock", "--format", "json"], out=out, err=io.StringIO())
    finally:
        sys.setrecursionlimit(old)
    assert code == 0
    chains = json.loads(out.getvalue())["chains"]
    assert len(chains) == 1 and chains[0]["root"] == hex(threads[-1])
    assert max(len(p) for p in chains[0]["paths"]) == 299       # the whole chain, not cut short


@pytest.mark.parametrize("command, target, want", [
    ("powerirps", "power_9f4_zteusbnet", ['<link cmd="!irp 0xfffffa8000c0a4a0">',
                                          '<link cmd="!thread 0xfffffa8000c09fd0">',
                                          '<link cmd="!devstack 0xfffffa8000c09390">',
                                          '<link cmd="!devnode 0xfffffa8000c09c70">',
                                          '<link cmd="dt nt!_ERESOURCE 0xfffff80002900270">']),
    ("dpcs", "dpc_133_athwbx", ['<link cmd="dt nt!_KDPC 0xfffffa8000c26ec0">']),
    ("timerres", "timerres_win81", ['<link cmd="!process 0xfffffa8000c0b710 0">']),
])
def test_new_commands_inside_windbg_link_and_keep_the_text(fake, command, target, want):
    from pykd_ext.cli import main
    fake.target = MockTarget.load(mock(target))
    fake.windbg = True
    out = DebuggerOut()
    assert main([command], out=out, err=io.StringIO()) == 0
    dml = "".join(out.dml)
    for w in want:
        assert w in dml
    plain = run_cli(command, "--dump", mock(target))[1]
    assert _strip_dml(dml) == plain.replace(mock(target), "debugger session (dump)")


def _slow_reads(fake, monkeypatch, latency_s, bytes_per_s):
    """loadBytes takes as long as over that link, on a clock the cache reads."""
    now = [0.0]
    monkeypatch.setattr(CachedTarget, "clock", staticmethod(lambda: now[0]))
    real = fake.loadBytes

    def load(offset, count, phyAddr=False):
        now[0] += latency_s + count / bytes_per_s
        return real(offset, count, phyAddr)
    monkeypatch.setattr(fake, "loadBytes", load)


def test_page_reads_that_prove_slow_on_a_live_target_get_a_one_line_hint(fake, monkeypatch):
    _slow_reads(fake, monkeypatch, 0.002, 11520.0)          # 115200 baud: 358 ms a page
    fake.kernels["com:port=COM1,baud=115200"] = mock("power_9f3_mutex_chain")    # 11 page reads
    code, out, err = run_cli("deadlock", "--kdnet", "com:port=COM1,baud=115200")
    assert code == 0 and "WAIT CHAIN" in out
    hints = [line for line in err.splitlines() if "--read-unit 32" in line]
    assert hints == ["pykd-ext: page reads take 358 ms each on this live target: bytes cost more than round "
                     "trips here, as on a serial cable; --read-unit 32 reads fields instead of pages "
                     "(README: Cost)"]
    # the unit chosen: no hint, the same findings
    code, out2, err = run_cli("deadlock", "--kdnet", "com:port=COM1,baud=115200", "--read-unit", "32")
    assert code == 0 and "read-unit" not in err and out2 == out


def test_no_hint_on_a_fast_link_or_a_dump(fake, monkeypatch):
    _slow_reads(fake, monkeypatch, 0.001, 10e6)              # KDNET-like: 1.4 ms a page
    fake.kernels["net:port=50000,key=1.2.3.4"] = mock("eresource_deadlock")
    code, out, err = run_cli("deadlock", "--kdnet", "net:port=50000,key=1.2.3.4")
    assert code == 0 and "read-unit" not in err
    _slow_reads(fake, monkeypatch, 0.002, 11520.0)           # a dump on a slow share: not a link
    code, out, err = run_cli("deadlock", "--dump", mock("eresource_deadlock"))
    assert code == 0 and "read-unit" not in err


def test_a_type_the_symbols_lack_comes_from_the_supplement_and_says_so():
    """Public symbols do not all carry _KWAIT_CHAIN_ENTRY (the fake's real-shaped ones lack
    it): the live layouts take the supplement's and record where it came from."""
    f, t = backend(mock("eresource_deadlock_win10"))
    lay = t.layouts().layout("_KWAIT_CHAIN_ENTRY")
    assert (lay.offset("Thread"), lay.offset("Event")) == (0x10, 0x18)
    assert "supplement" in t.layouts().type_sources["_KWAIT_CHAIN_ENTRY"]
    assert "_KUSER_SHARED_DATA" not in t.layouts().type_sources      # the symbols have that one


# -- addresses the user types: the debugger's own expressions ------------------------------------

def _pdo(target):
    """(nt!IopRootDeviceNode's value, _DEVICE_NODE.PhysicalDeviceObject offset, the root PDO)."""
    off = target.layouts().layout("_DEVICE_NODE").offset("PhysicalDeviceObject")
    root = int.from_bytes(target.read(target.symbol("nt!IopRootDeviceNode"), 8), "little")
    return root, off, int.from_bytes(target.read(root + off, 8), "little")


def test_inside_windbg_an_address_is_the_debuggers_expression(fake):
    from pykd_ext.cli import main
    fake.target = MockTarget.load(mock("power_9f4_zteusbnet"))
    fake.windbg = True
    root, off, pdo = _pdo(fake.target)
    fake.registers = {"$t0": pdo, "rcx": root + off - 8}
    for text in ("@$t0", "poi(@rcx+8)", "poi(poi(nt!IopRootDeviceNode)+0n%d)" % off, "@$t0-0x10*2+0n32"):
        out = DebuggerOut()
        code = main(["devstack", text, "--format", "json"], out=out, err=io.StringIO())
        assert code == 0, text
        assert json.loads(out.getvalue())["devices"][0]["device"] == "0x%x" % pdo, text
    # every one went to pykd.expr, as typed: none was parsed (and refused) by pykd_ext first
    assert fake.expressions == ["@$t0", "poi(@rcx+8)", "poi(poi(nt!IopRootDeviceNode)+0n%d)" % off,
                                "@$t0-0x10*2+0n32"]


def test_an_expression_the_debugger_refuses_is_one_line_exit_2(fake):
    from pykd_ext.cli import main
    fake.target = MockTarget.load(mock("power_9f4_zteusbnet"))
    fake.windbg = True
    err = io.StringIO()
    assert main(["irp", "@$t9"], out=DebuggerOut(), err=err) == 2
    # one line: what pykd said, from kdlib's "Call <method> failed\nHRESULT 0x..." (the HRESULT
    # DbgEng gives a bad expression is not documented: not asserted)
    text = err.getvalue()
    assert text.startswith("pykd-ext: irp: the debugger cannot evaluate '@$t9': Call IDebugControl::Evaluate failed")
    assert text.count("\n") == 1


def test_offline_a_register_is_said_to_need_a_debugger_session():
    for text in ("@$t0", "poi(@rcx+8)", "$ip"):
        code, out, err = run_cli("irp", text, "--target", mock("power_9f4_zteusbnet"))
        assert code == 2 and out == ""
        assert err == ("pykd-ext: irp: %r: pseudo-registers and registers need a live debugger session (inside "
                       "WinDbg); %s has none: give the address\n" % (text, mock("power_9f4_zteusbnet")))
    # what the offline subset does not take, and is no register, is still said as such
    code, out, err = run_cli("irp", "nt!X*2", "--target", mock("power_9f4_zteusbnet"))
    assert code == 2 and err.startswith("pykd-ext: irp: not an address or expression: 'nt!X*2'")
