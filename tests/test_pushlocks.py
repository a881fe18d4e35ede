"""Push locks, laid out as ReactOS's ExfAcquirePushLock*/ExpOptimizePushLockList lay them, on
every build: the lock word, the waiters' wait-block chain, and owners that can only be
inferred (AutoBoost lock entries on 8.1/10, the stack elsewhere) — said to be inferred."""
import json

import pytest

from pykd_ext.analysis.waitgraph import analyze
from pykd_ext.kernel.diag import Diagnostics
from pykd_ext.kernel.pushlocks import read_word, wait_chain
from pykd_ext.mock.builder import ScenarioBuilder
from pykd_ext.mock.scenarios import pushlock_recursive, pushlock_shared_waiters

from conftest import BUILDS, WIN10, WIN81, cached, mock, run_cli

LOCK_ENTRY_BUILDS = (WIN81, WIN10)          # KTHREAD.LockEntries: inline on 8.1, a pointer on 10


def _threads(b, start):
    return sorted(a for a, t in b.threads.items() if t.start == start)


def _thread_in(b, function):
    """The one thread the builder made with a frame in `function`."""
    (t,) = [a for a, info in b.threads.items() if any(s.startswith(function + "+") for s, _ in info.frames)]
    return t


def test_the_builder_writes_the_lock_word_and_chain_as_reactos_does():
    b = ScenarioBuilder(WIN10)
    b.module("Drv", "Drv.sys")
    sysp = b.process("System", 4)
    lock = b.push_lock()
    owners = [b.thread(sysp, 0x10 + 4 * i, "Drv!Owner") for i in range(2)]
    for t in owners:
        b.acquire_push_lock(lock, t, exclusive=False)
    assert b._u64(lock) == 0x21                         # two sharers, Locked
    frames = ["nt!KeWaitForGate+0x101", "nt!ExfAcquirePushLockExclusiveEx+0x1a0", "Drv!W+0x20"]
    w1 = b.thread(sysp, 0x20, "Drv!W", frames=frames)
    wb1 = b.wait_push_lock(w1, lock, exclusive=True)
    # first waiter: MultipleShared | Locked | Waiting | its block; the share count moves into it
    assert b._u64(lock) == wb1 | 0xb
    w2 = b.thread(sysp, 0x24, "Drv!W", frames=frames)
    wb2 = b.wait_push_lock(w2, lock, exclusive=True)
    # a later waiter: Waking set then cleared by ExpOptimizePushLockList
    assert b._u64(lock) == wb2 | 0xb
    off = lambda f: b.off("_EX_PUSH_LOCK_WAIT_BLOCK", f)
    assert b._u64(wb2 + off("Next")) == wb1 and b._u64(wb2 + off("Last")) == wb1
    assert b._u64(wb1 + off("Last")) == wb1 and b._u64(wb1 + off("Previous")) == wb2
    assert b._u32(wb1 + off("ShareCount")) == 2 and b._u32(wb1 + off("Flags")) == 3
    word = read_word(cached(b), lock)
    assert (word.locked, word.waiting, word.waking, word.multiple_shared) == (True, True, False, True)
    chain, complete = wait_chain(cached(b), word, Diagnostics(), "lock")
    assert complete and [c[0] for c in chain] == [wb2, wb1]


@pytest.mark.parametrize("build", BUILDS)
def test_waiters_behind_an_exclusive_holder(build):
    b = pushlock_shared_waiters(build)
    lock = b.symbols["CacheFlt!gTableLock"]
    worker = _thread_in(b, "CacheFlt!FlushTable")
    readers = _threads(b, "CacheFlt!LookupWorker")
    writer = _threads(b, "CacheFlt!InsertWorker")[0]
    a = analyze(cached(b))
    assert {(e.thread, e.lock, e.mode, e.evidence) for e in a.edges} == (
        {(t, lock, "shared", "wait-block-chain") for t in readers} | {(writer, lock, "exclusive", "wait-block-chain")})
    lk = a.locks[lock]
    assert lk.kind == "push lock" and lk.word == "Locked+Waiting"
    assert lk.owners == [(worker, "held")]
    assert lk.owner_evidence == {worker: "lock-entry" if build in LOCK_ENTRY_BUILDS else "stack-scan"}
    assert [(c.root, c.root_evidence) for c in a.chains] == [(worker, lk.owner_evidence[worker])]
    assert "waiting (Executive) on NotificationEvent" in a.chains[0].reason
    assert a.threads[writer].ticks == 56000 and not a.threads[writer].wait_slice
    assert not a.diagnostics


@pytest.mark.parametrize("build", BUILDS)
def test_a_recursive_acquire(build):
    b = pushlock_recursive(build)
    lock = b.symbols["FsFilter!gStreamLock"]
    t = _threads(b, "FsFilter!RenameWorker")[0]
    other = _threads(b, "FsFilter!CloseWorker")[0]
    a = analyze(cached(b))
    assert {(e.thread, e.mode) for e in a.edges} == {(t, "exclusive"), (other, "shared")}
    if build in LOCK_ENTRY_BUILDS:
        # its own AutoBoost entry says it holds the lock it waits for: a self-deadlock
        assert [(c.threads, c.locks, c.inferred) for c in a.cycles] == [([t], [lock], [(lock, t, "lock-entry")])]
    else:
        # no lock entries (7; 11 22000's KTHREAD has no LockEntries): the lock is the root,
        # said to record no owner -- never "no deadlock found"
        assert a.cycles == [] and [c.root for c in a.chains] == [lock]
        assert "records no owner" in a.chains[0].reason


@pytest.mark.parametrize("name", ["pushlock_shared_waiters", "pushlock_shared_waiters_win81",
                                  "pushlock_recursive", "pushlock_recursive_win11"])
def test_shipped_push_lock_targets_through_the_cli(name):
    code, out, err = run_cli("deadlock", "--target", mock(name), "--no-color")
    assert code == 0 and err == ""
    assert "No deadlock cycle and no thread waiting on an owned lock was found" not in out
    assert "push lock 0x" in out and "[wait-block-chain]" in out
    d = json.loads(run_cli("deadlock", "--target", mock(name), "--format", "json")[1])
    kinds = {l["lock_kind"] for l in d["locks"].values()}
    assert kinds == {"push lock"}
    if name.startswith("pushlock_shared"):
        owners = [o for l in d["locks"].values() for o in l["owners"]]
        assert [o["evidence"] for o in owners] == ["lock-entry"]
        assert "[owner inferred: lock-entry]" in out
    elif name == "pushlock_recursive":
        assert d["cycles"][0]["inferred_owners"][0]["evidence"] == "lock-entry"
        assert "is inferred (lock-entry), not recorded by the kernel" in out


def test_dot_draws_an_inferred_owner_dashed_with_its_evidence():
    code, out, err = run_cli("deadlock", "--target", mock("pushlock_recursive"), "--format", "dot")
    assert code == 0
    held = [l for l in out.splitlines() if "held" in l]
    assert held and all('label="held (inferred: lock-entry)"' in l and "style=dashed" in l for l in held)
