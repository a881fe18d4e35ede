"""stacks (issue 16, point 2): threads grouped by identical stack, with filters, on a shipped
target whose threads and waits the scenario states."""
import json

from conftest import mock, run_cli


def doc(*args):
    code, out, err = run_cli("stacks", "--target", mock("hang_no_cycle"), "--format", "json", *args)
    assert code == 0 and err == ""
    return json.loads(out)


def test_every_thread_once_in_groups_of_identical_stacks():
    d = doc()
    assert d["threads_scanned"] == d["threads_shown"] == 8
    assert sum(g["count"] for g in d["groups"]) == 8
    assert len({tuple(g["frames"]) for g in d["groups"]}) == len(d["groups"]) == 7
    top = d["groups"][0]                          # the two idle system workers share one stack
    assert top["count"] == 2 and top["frames"][-3:] == [
        "nt!ExpWorkerThread+0x1a3", "nt!PspSystemThreadStartup+0x5a", "nt!KiStartSystemThread+0x16"]


def test_filters():
    by_module = doc("--module", "SlowFlt")
    assert sorted(g["threads"][0]["cid"] for g in by_module["groups"]) == ["0004.02c4", "03e8.04d0", "0f3c.1b20"]
    assert {g["module"] for g in by_module["groups"]} == {"SlowFlt.sys"}
    waiting = doc("--wait-reason", "WrResource")
    assert sorted(t["cid"] for g in waiting["groups"] for t in g["threads"]) == ["03e8.04d0", "0f3c.1b20"]
    assert all(g["wait_is_slice"] for g in waiting["groups"])
    long = doc("--min-wait", "60", "--sort", "wait")
    assert [g["threads"][0]["cid"] for g in long["groups"]] == ["0004.02c4", "0f3c.1b24"]   # 180 s, then 164 s
    assert [t["cid"] for g in doc("--process", "explorer")["groups"] for t in g["threads"]] == \
        ["0f3c.1b20", "0f3c.1b24"]
    assert doc("--function", "NtWriteFile")["threads_shown"] == 1
    assert doc("--state", "Running")["groups"][0]["frames"] == ["nt!KiIdleLoop+0x5a"]


def test_text():
    code, out, err = run_cli("stacks", "--target", mock("hang_no_cycle"), "--no-color", "--module", "SlowFlt")
    assert code == 0
    assert "3 of 8 threads in 3 unique stacks" in out
    assert "current wait slice" in out and "-- SlowFlt.sys" in out
