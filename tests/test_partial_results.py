"""Partial results: Ctrl+Break mid-analysis, missing symbols, implausible sizes, and the
device-extension naming of locks."""
import gzip
import json

from pykd_ext.analysis.waitgraph import analyze
from pykd_ext.kernel.devices import device_containing
from pykd_ext.mock.builder import ScenarioBuilder
from pykd_ext.mock.scenarios import eresource_deadlock
from pykd_ext.target.cache import CachedTarget

from conftest import WIN81, WIN10, cached, mock, run_cli


class BreakOnStack(object):
    """A backend that is interrupted (as WinDbg's Ctrl+Break does) at its n-th stack unwind."""

    def __init__(self, inner, n):
        self.inner, self.n, self.name = inner, n, inner.name

    def stack(self, thread):
        self.n -= 1
        if self.n <= 0:
            raise SystemExit("CTRL+BREAK")
        return self.inner.stack(thread)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_ctrl_break_keeps_what_was_found_before():
    # on 19041 the waiter chains name both resource waits without a stack unwind; the break
    # comes at the second unwind, while the report loads the cycle's threads: the cycle found
    # before it is kept, with the one thread unwound before the break
    b = eresource_deadlock(WIN10)
    a = analyze(CachedTarget(BreakOnStack(b.target(), 2)))
    assert a.interrupted == "CTRL+BREAK"
    assert [d.kind for d in a.diagnostics] == ["interrupted"]
    assert len(a.edges) == 2 and len(a.cycles) == 1
    assert [f.start_symbol for f in a.threads.values()] == ["TestDriver!FileMoveThread"]


def test_ctrl_break_during_the_stack_scan_keeps_the_waits_read_before():
    # with the waiter chains unreadable the waits are found by scanning stacks, so unwinds
    # happen while collecting: the break comes at the second, after FileMoveThread was unwound
    b = eresource_deadlock(WIN10)
    for r in list(_resources(b)):
        b.put("_ERESOURCE", r, ExclusiveWaiters=0, NumberOfExclusiveWaiters=0)
    a = analyze(CachedTarget(BreakOnStack(b.target(), 2)))
    assert a.interrupted == "CTRL+BREAK"
    assert [d.kind for d in a.diagnostics] == ["interrupted"]
    # FileMoveThread's wait had been read: its chain to the lock's owner is still reported
    assert len(a.edges) == 1 and not a.cycles
    move = a.edges[0].thread
    assert a.edges[0].evidence == "stack-scan"
    assert a.threads[move].start_symbol == "TestDriver!FileMoveThread"
    assert [c.paths[0][0].thread for c in a.chains] == [move]


def _resources(b):
    """The ERESOURCEs on the builder's ExpSystemResourcesList that have waiters."""
    off = b.off("_ERESOURCE", "SystemResourcesList")
    link = b._u64(b.resource_head)
    while link != b.resource_head:
        r = link - off
        if b._res(r, "ExclusiveWaiters"):
            yield r
        link = b._u64(link)


def test_missing_symbols_give_warnings_not_tracebacks(tmp_path):
    d = json.loads(gzip.decompress(open(mock("eresource_deadlock"), "rb").read()))
    del d["symbols"]["nt!ExpSystemResourcesList"]
    del d["symbols"]["nt!KeMaximumIncrement"]
    p = tmp_path / "nosyms.json"
    p.write_text(json.dumps(d))
    code, out, err = run_cli("deadlock", "--target", str(p), "--format", "json")
    assert code == 3 and err == ""                    # the ERESOURCEs were not read: partial results
    r = json.loads(out)
    assert r["complete"] is False and r["interrupted"] is None
    msgs = [w["message"] for w in r["warnings"]]
    assert any("ERESOURCEs not listed: symbol nt!ExpSystemResourcesList not found" in m for m in msgs)
    assert any("wait times unknown" in m for m in msgs)
    assert r["scanned"]["resources"] == 0 and r["cycles"] == []


def test_no_process_list_symbol():
    b = ScenarioBuilder(WIN10)
    del b.symbols["nt!PsActiveProcessHead"]
    a = analyze(cached(b))
    assert a.counts["threads"] == 0
    assert a.diagnostics[0].message == "cannot list processes: symbol nt!PsActiveProcessHead not found"


def test_implausible_owner_table_is_capped_and_warned():
    b = ScenarioBuilder(WIN81)
    sysp = b.process("System", 4)
    r = b.eresource()
    t = b.thread(sysp, 0x10, "nt!ExpWorkerThread", frames=["nt!ExpWorkerThread+0x10"])
    b.acquire_resource(r, t, exclusive=False)
    b.acquire_resource(r, t + 0x1000, exclusive=False)          # makes the owner table
    table = int.from_bytes(b.mem.read(r + b.off("_ERESOURCE", "OwnerTable"), 8), "little")
    b.put("_OWNER_ENTRY", table, TableSize=0x7fffffff)
    b.wait_on(t, [b.event()])
    a = analyze(cached(b))
    assert any("owner table size 2147483647 is implausible" in d.message for d in a.diagnostics)


def test_device_containing_finds_the_extension_and_driver():
    b = ScenarioBuilder(WIN10)
    drv = b.driver_object("\\Driver\\Foo")
    dev, ext = b.device_object(drv, 0x200)
    loose = b.alloc(0x100)
    t = cached(b)
    assert device_containing(t, ext + 0x68) == (dev, 0x68, "\\Driver\\Foo")
    assert device_containing(t, ext + 0x200) is None              # past the extension
    assert device_containing(t, loose + 0x10) is None


def test_only_reported_threads_stacks_are_unwound():
    """5 threads wait on 8.1's deadlock target; wait blocks answer for all of them, so only
    the two threads of the cycle are unwound (one debugger round trip each when live)."""
    t = CachedTarget(eresource_deadlock(WIN81).target())
    a = analyze(t)
    assert len(a.cycles) == 1
    assert t.stats.stack_calls == 2
