"""End to end: the CLI on every shipped mock target, asserting the exact cycles, chains and
warnings (facts written out here, not read from the scenario descriptions)."""
import gzip
import json
import os
import subprocess
import sys

import pytest

from pykd_ext.mock import scenarios

from conftest import MOCKS, ROOT, mock, run_cli

MOVE, DELE = "TestDriver!FileMoveThread", "TestDriver!FileDeletionThread"

# target -> (cycles as [(start symbols of threads), lock addresses, evidence], chains as
#            [(root, reason prefix, waiters)], warning kinds)
EXPECTED = {
    "eresource_deadlock": (
        [([MOVE, DELE], ["0xfffffa8000c0b348", "0xfffffa8000c0b2e0"], ["wait-block", "wait-block"])], [], []),
    "eresource_deadlock_win7": (
        [([MOVE, DELE], ["0xfffffa8000c09388", "0xfffffa8000c09320"], ["wait-block", "wait-block"])], [], []),
    "eresource_deadlock_win10": (
        [([MOVE, DELE], ["0xfffffa8000c0f388", "0xfffffa8000c0f320"], ["wait-chain", "wait-chain"])], [], []),
    # seed 003: the PnP-lock holder waits on an event, nobody waits on its locks: no chain
    "power_9f4_zteusbnet": ([], [], []),
    # the holder waits on its IOCTL's event in AcmeCam; nobody waits on its locks: no chain
    "power_9f4_other_irp": ([], [], []),
    "power_9f4_other_irp_win7": ([], [], []),
    # the holder and AcmeBus's worker each wait on their IRP's event; nobody waits on a lock: no chain
    "power_9f4_irp_chain": ([], [], []),
    "dpc_133_athwbx": ([], [], []),
    "dpc_133_cumulative": ([], [], []),
    "timerres_win81": ([], [], []),
    "timerres_win10": ([], [], []),
    "corrupt_dpc_lists": ([], [], []),
    "power_9f3_filter": ([], [], []),
    "power_clean": ([], [], []),
    "power_9f3_starved": ([], [], []),
    "corrupt_power_lists": ([], [], []),
    # 0x101: the hung CPU 2's DPC spins behind NicDrv's reset worker on CPU 3 (a candidate holder)
    "bugcheck_101_hung_cpu": (
        [], [("0xfffffa8000c28f00", "running on processor 3 (not waiting)", ["0xfffffa8000c1cf00"])], []),
    # 0xD1: the send worker queues behind the faulting DPC's in-stack queued spin lock
    "bugcheck_d1_lock_holder": (
        [], [("0xfffffa8000c0fa90", "running on processor 1 (not waiting)", ["0xfffffa8000c1bf00"])], []),
    # the lint targets hold no lock anyone waits for
    "lint_unload_during_init": ([], [], []),
    "lint_unload_during_init_legacy": ([], [], []),
    "lint_wait_at_dispatch": ([], [], []),
    "lint_wait_at_dispatch_win11": ([], [], []),
    # the power worker and AcmeAudio's stream thread queue behind OemHelper's sleeping poll thread
    "power_9f3_mutex_chain": (
        [], [("0xfffffa8000c13090", "sleeping (KeDelayExecutionThread, DelayExecution) while holding the lock",
              ["0xfffffa8000c11eb0", "0xfffffa8000c127a0"])], []),
    # push locks record no owner: the holder is inferred (its AutoBoost lock entry on 8.1/10)
    "pushlock_shared_waiters": (
        [], [("0xfffffa8000c0f070", "waiting (Executive) on NotificationEvent",
              ["0xfffffa8000c0fb50", "0xfffffa8000c10630", "0xfffffa8000c11110"])], []),
    "pushlock_shared_waiters_win81": (
        [], [("0xfffffa8000c0b030", "waiting (Executive) on NotificationEvent",
              ["0xfffffa8000c0b7b0", "0xfffffa8000c0bf30", "0xfffffa8000c0c6b0"])], []),
    "pushlock_recursive": (
        [(["FsFilter!RenameWorker"], ["0xfffff88000e10000"], ["wait-block-chain"])],
        [("0xfffff88000e10000", "waits behind deadlock cycle 1", ["0xfffffa8000c0fb30"])], []),
    # 11 22000's KTHREAD has no LockEntries: the lock is the root, with no owner to name
    "pushlock_recursive_win11": (
        [], [("0xfffff88000e10000", "a push lock (Locked+Waiting): the kernel records no owner",
              ["0xfffffa8000c10050", "0xfffffa8000c10940"])], []),
    # a process-notify callback unregistering itself: a self-wait read from the stack's shape
    "selfwait_process_notify": (
        [(["ntdll!RtlUserThreadStart"], ["0xfffff88000e0109e"], ["stack-pattern"])], [], []),
    "selfwait_process_notify_win7": (
        [(["ntdll!RtlUserThreadStart"], ["0xfffff88000e0109e"], ["stack-pattern"])], [], []),
    # the owner waits on its driver's event while its driver's completion worker waits for
    # the lock: a chain, with a suspected cross-object deadlock (tests/test_crossobject.py)
    "crossobject_event": (
        [], [("0xfffffa8000c0f080", "waiting (Executive) on NotificationEvent",
              ["0xfffffa8000c0f920", "0xfffffa8000c101c0"])], []),
    "crossobject_event_win81": (
        [], [("0xfffffa8000c0b040", "waiting (Executive) on NotificationEvent",
              ["0xfffffa8000c0b7c0", "0xfffffa8000c0bf60"])], []),
    # in-stack queued spin locks taken ABBA: each queue records its holder (its head entry)
    "spinlock_queued_abba": (
        [(["NetFlt!ReceiveWorker", "NetFlt!OidWorker"], ["0xfffff88000e20008", "0xfffff88000e20000"],
          ["queue-entry", "queue-entry"])], [], []),
    "spinlock_queued_abba_win7": (
        [(["NetFlt!ReceiveWorker", "NetFlt!OidWorker"], ["0xfffff88000e20008", "0xfffff88000e20000"],
          ["queue-entry", "queue-entry"])], [], []),
    # a plain spin lock: two spinners behind StorFlt's DISPATCH-level reset worker (a candidate)
    "spinlock_plain_spinners": (
        [], [("0xfffffa8000c28f00", "running on processor 3 (not waiting)",
              ["0xfffffa8000c0fa90", "0xfffffa8000c1bf00"])], []),
    "spinlock_plain_spinners_win11": (
        [], [("0xfffffa8000c2bf00", "running on processor 3 (not waiting)",
              ["0xfffffa8000c10bd0", "0xfffffa8000c1df00"])], []),
    "self_deadlock_fastmutex": (
        [(["RecurseDrv!RefreshWorker"], ["0xfffff88000e08000"], ["wait-block"])], [], []),
    "hang_no_cycle": (
        [], [("0xfffffa8000c11770", "waiting (Executive) on NotificationEvent 0xfffffa8000c11750 for 0:00:03:00.000",
              ["0xfffffa8000c12060", "0xfffffa8000c12950", "0xfffffa8000c132b0"])], []),
    # the same hang, taken as a live dump (0x1CC): the same memory, the same answer
    "livedump_1cc_eresource": (
        [], [("0xfffffa8000c11770", "waiting (Executive) on NotificationEvent 0xfffffa8000c11750 for 0:00:03:00.000",
              ["0xfffffa8000c12060", "0xfffffa8000c12950", "0xfffffa8000c132b0"])], []),
    "corrupt_thread_list_loop": (
        [([MOVE, DELE], ["0xfffffa8000c0b348", "0xfffffa8000c0b2e0"], ["wait-block", "wait-block"])], [], ["loop"]),
    "corrupt_waitblock_unreadable": (
        [([MOVE, DELE], ["0xfffffa8000c0b348", "0xfffffa8000c0b2e0"], ["wait-block", "stack-scan"])], [],
        ["unreadable"]),
    "corrupt_null_flink": (
        [], [("0xfffffa8000c0bb30", "waiting in nt!ExAcquireResourceExclusiveLite for an ERESOURCE that is not",
              ["0xfffffa8000c0c2b0"])], ["null-link"]),
    "corrupt_unreadable_process": (
        [], [("0xfffffa8000c11770", "waiting (Executive) on NotificationEvent",
              ["0xfffffa8000c12060", "0xfffffa8000c12950", "0xfffffa8000c132b0"])], ["unreadable"]),
}


def test_every_shipped_target_has_expectations():
    shipped = sorted(f[:-len(".json.gz")] for f in os.listdir(MOCKS) if f.endswith(".json.gz"))
    assert shipped == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_json_facts(name):
    code, out, err = run_cli("deadlock", "--target", mock(name), "--format", "json")
    cycles, chains, warnings = EXPECTED[name]
    # a target read with warnings gives partial results: exit 3, complete false
    assert code == (3 if warnings else 0) and err == ""
    d = json.loads(out)
    assert d["complete"] is (not warnings) and d["interrupted"] is None
    got = [([d["threads"][t]["start"] for t in c["threads"]], c["locks"], [e["evidence"] for e in c["edges"]])
           for c in d["cycles"]]
    assert got == cycles
    for c in d["cycles"]:                         # each edge: waits for a lock held by the next thread
        n = len(c["threads"])
        for i, e in enumerate(c["edges"]):
            assert (e["thread"], e["lock"], e["held_by"]) == (
                c["threads"][i], c["locks"][i], c["threads"][(i + 1) % n])
            assert e["mode"] == ("self" if e["evidence"] == "stack-pattern" else "exclusive")
    assert [(c["root"], c["waiters"]) for c in d["chains"]] == [(r, w) for r, _, w in chains]
    for c, (_, reason, _) in zip(d["chains"], chains):
        assert c["reason"].startswith(reason)
    assert [w["kind"] for w in d["warnings"]] == warnings


def test_seed_001_facts_in_detail():
    d = json.loads(run_cli("deadlock", "--target", mock("eresource_deadlock"), "--format", "json")[1])
    c = d["cycles"][0]
    move, dele = (d["threads"][t] for t in c["threads"])
    assert (move["cid"], move["process"], move["state"], move["wait_reason"]) == (
        "0004.01f4", "System", "Waiting", "WrResource")
    # six minutes of waiting in ExpWaitForResource: 0.5 s, then 4 s re-waits; WaitTime is the
    # start of the last one, 3.5 s ago (224 ticks), and the reading says it is a slice
    assert (move["wait_ticks"], move["wait_seconds"], move["wait_is_slice"]) == (224, 3.5, True)
    assert [(h["lock"], h["lock_kind"], h["mode"]) for h in move["holds"]] == [
        (c["locks"][1], "eresource", "exclusive")]
    assert [(h["lock"], h["lock_kind"], h["mode"]) for h in dele["holds"]] == [
        (c["locks"][0], "eresource", "exclusive")]
    assert move["holds"][0]["lock_name"] == d["locks"][c["locks"][1]]["lock_name"]
    assert move["module"] == dele["module"] == "TestDriver.sys"
    assert c["modules"] == ["TestDriver.sys"]
    # FileResource1 and FileResource2 are named by where they live: TestDriver's device extension
    names = [d["locks"][l]["lock_name"] for l in c["locks"]]
    assert [n.split(" extension")[1] for n in names] == ["+0x68", "+0x0"]
    assert all(n.startswith("\\Driver\\TestDriver device 0x") for n in names)
    # FileCreationThread finished: it is terminated and part of no cycle or chain
    creation = [t for t in d["threads"].values() if t["start"] == "TestDriver!FileCreationThread"]
    assert creation == []


def test_hang_chain_paths_go_through_the_mutex_holder():
    d = json.loads(run_cli("deadlock", "--target", mock("hang_no_cycle"), "--format", "json")[1])
    ch = d["chains"][0]
    assert ch["module"] == "SlowFlt.sys"
    lock = "0xfffff88000e10000"
    assert d["locks"][lock]["lock_name"] == "SlowFlt!gConfigLock"
    modes = sorted((p[0]["thread"], p[0]["mode"], len(p)) for p in ch["paths"])
    assert modes == [("0xfffffa8000c12060", "exclusive", 1), ("0xfffffa8000c12950", "shared", 1),
                     ("0xfffffa8000c132b0", "exclusive", 2)]
    via_mutex = [p for p in ch["paths"] if len(p) == 2][0]
    assert [e["lock"] for e in via_mutex] == ["0xfffffa8000c13270", lock]
    assert [e["lock_kind"] for e in via_mutex] == ["mutant", "eresource"]
    # the shared waiter queued behind the exclusive one sits in an owner-table entry (as
    # ExpFindFreeEntry puts it): reported as a queued waiter, not an owner
    assert d["locks"][lock]["waiters_in_owner_entries"] == ["0xfffffa8000c12950"]
    assert [o["owner"] for o in d["locks"][lock]["owners"]] == ["0xfffffa8000c11770"]
    assert d["locks"]["0xfffffa8000c13270"]["lock_kind"] == "mutant"


def test_text_matches_golden_and_states_the_facts():
    code, out, _ = run_cli("deadlock", "--target", mock("eresource_deadlock"))
    assert code == 0
    out = out.replace(mock("eresource_deadlock"), "eresource_deadlock.json.gz")
    with open(os.path.join(ROOT, "tests", "golden", "eresource_deadlock.txt")) as f:
        assert out == f.read()
    assert "DEADLOCK 1: 2 threads, 2 locks -- look at TestDriver.sys" in out
    assert out.count("DEADLOCK") == 1 and "WAIT CHAIN" not in out and "WARNINGS" not in out
    table = out[out.index("THREADS"):].splitlines()[3:5]          # the at-a-glance table
    assert [r.split()[1:4] for r in table] == [["0004.01f4", "System", "Waiting/WrResource"],
                                                ["0004.01f8", "System", "Waiting/WrResource"]]


def test_text_of_a_chain_and_warnings():
    out = run_cli("deadlock", "--target", mock("corrupt_unreadable_process"))[1]
    assert "WAIT CHAIN 1: 3 waiters behind one root blocker -- look at SlowFlt.sys" in out
    assert "WARNINGS (1): results may be partial" in out
    assert "(smss.exe): entry at 0xfffffa80badf0000" in out


def test_no_color_to_a_pipe_and_with_no_color(monkeypatch):
    assert "\x1b[" not in run_cli("deadlock", "--target", mock("eresource_deadlock"))[1]
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[" not in run_cli("deadlock", "--target", mock("eresource_deadlock"), "--no-color")[1]


def test_dot_marks_the_cycle():
    out = run_cli("deadlock", "--target", mock("eresource_deadlock"), "--format", "dot")[1]
    assert out.startswith("digraph waitfor {")
    assert out.count("color=red") == 8           # 4 nodes and 4 edges of the cycle


@pytest.mark.parametrize("argv, says", [
    (["deadlock", "--target", "nope.json.gz"], "nope.json.gz: cannot read"),
    (["deadlock"], "no target"),
    (["deadlock", "--target", mock("eresource_deadlock"), "--format", "xml"], "invalid choice"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_is_one_line_and_exit_2(argv, says):
    code, out, err = run_cli(*argv)
    assert code == 2 and out == ""
    assert says in err and err.count("\n") == 1


def test_truncated_target_file_exit_2(tmp_path):
    with open(mock("eresource_deadlock"), "rb") as f:
        data = f.read()
    p = tmp_path / "cut.json.gz"
    p.write_bytes(data[:len(data) // 2])
    code, out, err = run_cli("deadlock", "--target", str(p))
    assert code == 2 and "cut.json.gz" in err and "truncated" in err and err.count("\n") == 1


def test_target_without_needed_types_is_unusable_exit_2(tmp_path):
    d = json.loads(gzip.decompress(open(mock("eresource_deadlock"), "rb").read()))
    del d["build"]
    d["layouts"] = {"build": "empty", "pointer_size": 8, "structs": {}, "enums": {}}
    p = tmp_path / "nolayout.json"
    p.write_text(json.dumps(d))
    code, out, err = run_cli("deadlock", "--target", str(p))
    assert code == 2 and "unusable target" in err and "_EPROCESS" in err


def test_script_gives_what_the_cli_gives():
    for fmt in ("json", "text"):
        cli = run_cli("deadlock", "--target", mock("hang_no_cycle"), "--format", fmt)[1]
        script = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "deadlock.py"),
                                 "--target", mock("hang_no_cycle"), "--format", fmt],
                                capture_output=True, text=True, check=True).stdout
        assert script == cli


def test_python_dash_m_runs_the_cli():
    r = subprocess.run([sys.executable, "-m", "pykd_ext", "deadlock", "--target", mock("self_deadlock_fastmutex"),
                        "--format", "json"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and json.loads(r.stdout)["cycles"][0]["locks"] == ["0xfffff88000e08000"]


@pytest.mark.parametrize("name", sorted(scenarios.SHIPPED))
def test_shipped_targets_are_what_the_builder_makes(name, tmp_path):
    p = str(tmp_path / (name + ".json.gz"))
    scenarios.SHIPPED[name]().save(p)
    with open(p, "rb") as a, open(mock(name), "rb") as b:
        assert gzip.decompress(a.read()) == gzip.decompress(b.read()), \
            "regenerate with: python -m pykd_ext.mock.scenarios mock_targets/"


def test_dot_keeps_backslashes_and_says_title_roots_and_emptiness():
    code, out, _ = run_cli("deadlock", "--target", mock("eresource_deadlock"), "--format", "dot")
    assert code == 0
    assert "\\\\Driver\\\\TestDriver device" in out               # escaped: renders as \Driver\TestDriver
    assert 'labelloc=t; label="deadlock -- ' in out and "1 cycle, 0 chains" in out
    code, out, _ = run_cli("deadlock", "--target", mock("hang_no_cycle"), "--format", "dot")
    assert 'xlabel="root blocker"' in out
    code, out, _ = run_cli("deadlock", "--target", mock("dpc_133_cumulative"), "--format", "dot")
    assert 'label="no thread waits on a lock"' in out
    code, out, _ = run_cli("deadlock", "--target", mock("corrupt_null_flink"), "--format", "dot")
    assert "PARTIAL: 1 warning" in out


def test_an_interrupted_run_says_so_first(monkeypatch):
    import pykd_ext.analysis.waitgraph as wg

    def stop(*a, **k):
        raise KeyboardInterrupt()
    monkeypatch.setattr(wg, "all_resources", stop)
    code, out, err = run_cli("deadlock", "--target", mock("eresource_deadlock"), "--no-color")
    lines = [l for l in out.splitlines() if l.strip()]
    # the first line under the title, before any count or finding; exit 3: partial results
    assert lines[1].startswith("INTERRUPTED (Ctrl+C): partial results")
    assert code == 3
    assert "No deadlock cycle" not in out and "Nothing found before the interruption." in out
    code, out, err = run_cli("deadlock", "--target", mock("eresource_deadlock"), "--format", "json")
    d = json.loads(out)
    assert code == 3 and (d["complete"], d["interrupted"]) == (False, "Ctrl+C")
