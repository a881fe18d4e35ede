"""Lock + event hangs (issue 15, point 4): the owner waits on an event; where the event lives
(its pool tag); which waiters of the lock run in the owner's driver; a suspicion, never a
certain deadlock."""
import json

import pytest

from pykd_ext.analysis.crossobject import pool_block
from pykd_ext.analysis.waitgraph import analyze
from pykd_ext.mock.builder import ScenarioBuilder
from pykd_ext.mock.scenarios import crossobject_event

from conftest import WIN10, WIN11, WIN7, WIN81, cached, mock, run_cli


@pytest.mark.parametrize("build", [WIN7, WIN81, WIN10, WIN11])
def test_the_owner_waits_on_its_drivers_event_behind_which_its_worker_waits(build):
    b = crossobject_event(build)
    by = lambda f: [a for a, i in b.threads.items() if any(s.startswith(f) for s, _ in i.frames)][0]
    owner, worker, reader = by("SyncDrv!FlushThread"), by("SyncDrv!CompletionWorker"), by("OtherFs!ReadThread")
    a = analyze(cached(b))
    assert a.cycles == []                         # never a certain deadlock
    (ch,) = a.chains
    assert ch.root == owner and ch.suspected is not None
    (event, where), = ch.suspected["events"]
    assert "tagged 'SyDv'" in where
    # the reader's innermost driver frame is SyncDrv!QueryVolume: it runs in SyncDrv too
    assert set(ch.suspected["same_driver_waiters"]) == {worker, reader}
    assert "suspected" in ch.suspected["reason"]


def test_no_suspicion_when_no_waiter_runs_in_the_owners_driver():
    b = ScenarioBuilder(WIN10)
    b.module("A", "A.sys")
    b.module("B", "B.sys")
    sysp = b.process("System", 4)
    r = b.eresource()
    owner = b.thread(sysp, 0x10, "A!Owner", frames=["nt!KeWaitForSingleObject+0x19f", "A!Owner+0x20"])
    b.acquire_resource(r, owner)
    b.wait_on(owner, [b.event(pool_tag="AAAA")], "Executive")
    w = b.thread(sysp, 0x14, "B!W", frames=["nt!KeWaitForSingleObject+0x19f", "nt!ExpWaitForResource+0x6d",
                                            "nt!ExAcquireResourceExclusiveLite+0x1a6", "B!W+0x20"])
    b.wait_resource(w, r)
    a = analyze(cached(b))
    assert [c.root for c in a.chains] == [owner] and a.chains[0].suspected is None


def test_pool_block_finds_the_header_that_covers_an_address():
    b = ScenarioBuilder(WIN10)
    blk = b.alloc_pool(0x80, "Tst1")
    t = cached(b)
    assert pool_block(t, blk) == (blk, "Tst1")
    assert pool_block(t, blk + 0x48) == (blk, "Tst1")


@pytest.mark.parametrize("name", ["crossobject_event", "crossobject_event_win81"])
def test_shipped_cross_object_targets(name):
    code, out, err = run_cli("deadlock", "--target", mock(name), "--no-color")
    assert code == 0 and err == ""
    assert "SUSPECTED CROSS-OBJECT DEADLOCK: the owner, in SyncDrv.sys, waits on event" in out
    assert "DEADLOCK 1" not in out
    d = json.loads(run_cli("deadlock", "--target", mock(name), "--format", "json")[1])
    s = d["chains"][0]["suspected_cross_object"]
    assert "'SyDv'" in s["events"][0]["where"] and len(s["same_driver_waiters"]) == 2
