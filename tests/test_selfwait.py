"""Self-waits by stack shape (issue 15, point 3): a documented pattern on a waiting thread's
stack is a one-thread deadlock with evidence stack-pattern; the same routine outside the
callback is not."""
import json

import pytest

from pykd_ext.analysis import selfwait
from pykd_ext.analysis.waitgraph import analyze
from pykd_ext.mock.scenarios import selfwait_process_notify

from conftest import WIN7, WIN10, WIN11, WIN81, cached, mock, run_cli


def test_every_pattern_is_data_with_its_public_source():
    for p in selfwait.SELF_WAITS:
        assert set(p) == {"name", "wait_in", "inside", "explain", "source"}
        assert p["source"].startswith("Microsoft docs") and p["wait_in"] and p["inside"]


@pytest.mark.parametrize("build", [WIN7, WIN81, WIN10, WIN11])
def test_a_callback_unregistering_itself(build):
    b = selfwait_process_notify(build)
    (t,) = [a for a, i in b.threads.items() if any(s.startswith("AcmeAv!OnProcessNotify") for s, _ in i.frames)]
    (unload,) = [a for a, i in b.threads.items() if any(s.startswith("AcmeAv!DriverUnload") for s, _ in i.frames)]
    a = analyze(cached(b))
    (c,) = a.cycles
    assert c.threads == [t] and [e.evidence for e in c.edges] == ["stack-pattern"]
    lk = a.locks[c.locks[0]]
    assert lk.kind == "callback rundown" and "AcmeAv!OnProcessNotify" in lk.name
    assert c.inferred == [(c.locks[0], t, "stack-pattern")]
    assert a.threads[t].driver == "AcmeAv.sys"
    # the unload routine's unregister, outside any callback, is no self-wait
    assert unload not in {e.thread for e in a.edges}


@pytest.mark.parametrize("name", ["selfwait_process_notify", "selfwait_process_notify_win7"])
def test_shipped_self_wait_targets(name):
    code, out, err = run_cli("deadlock", "--target", mock(name), "--no-color")
    assert code == 0 and err == ""
    assert "DEADLOCK 1: 1 thread, 1 lock -- look at AcmeAv.sys" in out
    assert "a self-wait read from the stack's shape: removing a process-notify routine" in out
    assert "[stack-pattern]" in out
    d = json.loads(run_cli("deadlock", "--target", mock(name), "--format", "json")[1])
    assert d["cycles"][0]["inferred_owners"][0]["evidence"] == "stack-pattern"
