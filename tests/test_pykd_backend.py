"""The pykd backend through a fake pykd (tests/fake_pykd.py) backed by mock targets."""
import io
import json
import os
import re
import sys

import pytest

from conftest import BUILDS, MOCKS, WIN7, WIN10, mock, run_cli
from fake_pykd import FakePykd
from pykd_ext.errors import MemoryFault, SymbolNotFound
from pykd_ext.mock.builder import ScenarioBuilder
from pykd_ext.target.cache import CachedTarget
from pykd_ext.target.layouts import load_shipped
from pykd_ext.target.mock import MockTarget
from pykd_ext.target.pykd_backend import PykdTarget, parse_find_symbol

SHIPPED = sorted(n[:-len(".json.gz")] for n in os.listdir(MOCKS) if n.endswith(".json.gz"))

# the types the analyses read, and a few more the coming commands will
USED_TYPES = ["_KTHREAD", "_ETHREAD", "_EPROCESS", "_KPROCESS", "_ERESOURCE", "_OWNER_ENTRY",
              "_KWAIT_BLOCK", "_DISPATCHER_HEADER", "_KMUTANT", "_FAST_MUTEX", "_KEVENT",
              "_KSEMAPHORE", "_KUSER_SHARED_DATA", "_DEVICE_OBJECT", "_DRIVER_OBJECT", "_IRP",
              "_IO_STACK_LOCATION", "_KPRCB", "_KDPC", "_LIST_ENTRY", "_UNICODE_STRING"]


@pytest.fixture
def fake(monkeypatch):
    f = FakePykd()
    monkeypatch.setitem(sys.modules, "pykd", f)
    return f


def backend(path):
    f = FakePykd(MockTarget.load(path))
    return f, PykdTarget(f, path)


@pytest.mark.parametrize("build", BUILDS)
def test_layouts_from_type_info_match_the_public_symbols(build):
    b = ScenarioBuilder(build)
    b.process("System", pid=4)
    f = FakePykd(b.target())
    live, shipped = PykdTarget(f, "t").layouts(), load_shipped(build)
    for name in USED_TYPES:
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


def test_a_typedef_the_symbols_lack_is_the_wdk_one_and_a_missing_type_is_missing():
    f = FakePykd(MockTarget.load(mock("eresource_deadlock_win10")))
    live = PykdTarget(f, "t").layouts()
    assert live.has_type("_KGUARDED_MUTEX")                     # WDK: FAST_MUTEX on 8.1+
    assert live.layout("_KGUARDED_MUTEX").size == load_shipped(WIN10).layout("_FAST_MUTEX").size
    assert not live.has_type("_NO_SUCH_TYPE")
    f7 = FakePykd(MockTarget.load(mock("eresource_deadlock_win7")))
    assert PykdTarget(f7, "t").layouts().layout("_KGUARDED_MUTEX").has("Gate")   # its own type on 7


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
    assert code == 0, err
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
    assert code == 0
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
