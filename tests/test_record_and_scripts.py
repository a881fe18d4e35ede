"""record -> replay is byte-identical; the !py scripts give what the CLI gives."""
import gzip
import json
import os
import subprocess
import sys

import pytest

from conftest import MOCKS, ROOT, mock, run_cli
from fake_pykd import FakePykd
from pykd_ext.commands import COMMANDS
from pykd_ext.target.cache import CachedTarget
from pykd_ext.target.mock import MockTarget
from pykd_ext.target.record import RecordingTarget

SHIPPED = sorted(n[:-len(".json.gz")] for n in os.listdir(MOCKS) if n.endswith(".json.gz"))
ANALYSES = [n for n in COMMANDS if n != "record"]
NO_ARGS = [n for n in ANALYSES if not getattr(COMMANDS[n], "NEEDS_ARGUMENTS", False)]
FORMATS = {"deadlock": ["text", "json", "dot"]}


def _outputs(source_args):
    out = {}
    for cmd in NO_ARGS:
        for fmt in FORMATS.get(cmd, ["text"]):
            code, text, err = run_cli(cmd, *source_args, "--format", fmt)
            out[cmd, fmt] = (code, text, err)
    return out


@pytest.mark.parametrize("name", SHIPPED)
def test_replay_of_a_recording_is_byte_identical(name, tmp_path):
    rec = str(tmp_path / "case.json.gz")
    code, out, err = run_cli("record", "--target", mock(name), "-o", rec)
    assert code == 0, err
    assert "deadlock   recorded" in out
    # identical but for the name: a replay names the file replayed and what it was recorded from
    assert _renamed(_outputs(["--target", rec]), "%s (recorded from %s)" % (rec, mock(name)), mock(name)) \
        == _outputs(["--target", mock(name)])


def _renamed(outputs, name, original):
    return {k: tuple(x.replace(name, original) if isinstance(x, str) else x for x in v) for k, v in outputs.items()}


def test_a_replay_is_titled_with_the_file_replayed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("record", "--target", mock("eresource_deadlock"), "-o", "case.json.gz", "deadlock")
    assert code == 0, err
    code, out, err = run_cli("deadlock", "--target", "case.json.gz", "--no-color")
    build = json.loads(run_cli("deadlock", "--target", mock("eresource_deadlock"), "--format", "json")[1])["build"]
    assert out.splitlines()[0] == "deadlock -- case.json.gz (recorded from %s) (%s)" % (mock("eresource_deadlock"), build)
    r = json.loads(run_cli("deadlock", "--target", "case.json.gz", "--format", "json")[1])
    assert r["target"] == "case.json.gz (recorded from %s)" % mock("eresource_deadlock")


@pytest.mark.parametrize("name", ["eresource_deadlock", "eresource_deadlock_win10", "corrupt_waitblock_unreadable"])
def test_record_through_pykd_then_replay_without_it(name, tmp_path, monkeypatch):
    monkeypatch.setenv("_NT_SYMBOL_PATH", "srv*C:\\Symbols*https://msdl.microsoft.com/download/symbols")
    fake = FakePykd()
    monkeypatch.setitem(sys.modules, "pykd", fake)
    rec = str(tmp_path / "case.json.gz")
    code, out, err = run_cli("record", "--dump", mock(name), "-o", rec)
    assert code == 0, err
    live = _outputs(["--dump", mock(name)])
    assert fake.forbidden == []
    monkeypatch.setitem(sys.modules, "pykd", None)          # the replay needs no pykd
    origin = json.loads(gzip.decompress(open(rec, "rb").read()))["origin"]
    assert _renamed(_outputs(["--target", rec]), "%s (recorded from %s)" % (rec, origin), origin) == live
    doc = json.loads(gzip.decompress(open(rec, "rb").read()))
    assert "build" not in doc and doc["layouts"]["structs"]     # layouts from the target's symbols
    assert doc["origin"] == mock(name)


def test_a_recording_holds_the_ranges_read_not_the_pages_fetched():
    inner = CachedTarget(MockTarget.load(mock("eresource_deadlock")))
    rec = RecordingTarget(inner)
    COMMANDS["deadlock"].run(_args("deadlock"), rec, _Sink())
    doc = rec.document()
    recorded = sum(len(d) for _, d in rec.ranges())
    assert recorded < inner.stats.bytes                 # not the whole pages the cache fetched
    # every recorded range starts where a read started, and every byte read is recorded
    starts = {a for a, _ in rec._reads}
    assert all(int(r["address"], 16) in starts for r in doc["memory"])
    replay = MockTarget(doc)
    for a, data in rec._reads:
        assert replay.read(a, len(data)) == data
    # and only the types and enums used are kept
    assert "_KDPC" not in doc["layouts"]["structs"]       # deadlock reads the PRCBs (spin locks), not DPCs
    assert "_ERESOURCE" in doc["layouts"]["structs"]


def test_record_names_an_unknown_command_in_one_line(tmp_path):
    code, out, err = run_cli("record", "--target", mock("eresource_deadlock"), "-o",
                             str(tmp_path / "x.json.gz"), "deadlok")
    assert code == 2 and out == ""
    assert err.strip() == "pykd-ext: record: no command deadlok (commands: %s)" % ", ".join(ANALYSES)
    assert not (tmp_path / "x.json.gz").exists()


def test_record_to_an_unwritable_place_is_one_line_exit_2(tmp_path):
    code, out, err = run_cli("record", "--target", mock("eresource_deadlock"), "-o",
                             str(tmp_path / "no" / "such" / "dir.json.gz"))
    assert code == 2
    assert err.startswith("pykd-ext: record: cannot write ") and len(err.splitlines()) == 1


# -- scripts ---------------------------------------------------------------------------------------

def _script(name, *argv):
    p = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", name + ".py")] + list(argv),
                       capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, NO_COLOR=""))
    return p.returncode, p.stdout, p.stderr


def test_there_is_one_script_per_command():
    scripts = sorted(n[:-3] for n in os.listdir(os.path.join(ROOT, "scripts")) if n.endswith(".py"))
    assert scripts == sorted(COMMANDS)


@pytest.mark.parametrize("name", SHIPPED)
def test_scripts_give_what_the_cli_gives(name, tmp_path):
    for fmt in ("text", "json"):
        assert _script("deadlock", "--target", mock(name), "--format", fmt) == \
            run_cli("deadlock", "--target", mock(name), "--format", fmt)
    a, b = str(tmp_path / "a.json.gz"), str(tmp_path / "b.json.gz")
    code, out, err = _script("record", "--target", mock(name), "-o", a)
    assert code == 0, err
    assert run_cli("record", "--target", mock(name), "-o", b)[0] == 0
    assert open(a, "rb").read() == open(b, "rb").read()


def test_script_errors_exit_2_like_the_cli():
    code, out, err = _script("deadlock", "--target", "/no/such/file.json.gz")
    assert code == 2 and out == ""
    assert err.strip() == run_cli("deadlock", "--target", "/no/such/file.json.gz")[2].strip()


class _Sink(object):
    def write(self, text):
        pass


def _args(cmd):
    from pykd_ext.cli import build_parser
    return build_parser().parse_args([cmd, "--no-color"])


def test_record_inside_windbg_then_replay(tmp_path, monkeypatch):
    """!py -m pykd_ext record -o case.json.gz deadlock, then the replay anywhere."""
    import io
    from pykd_ext.cli import main
    fake = FakePykd(MockTarget.load(mock("eresource_deadlock_win7")), windbg=True)
    monkeypatch.setitem(sys.modules, "pykd", fake)
    rec = str(tmp_path / "case.json.gz")
    out = io.StringIO()
    assert main(["record", "-o", rec, "deadlock"], out=out, err=io.StringIO()) == 0
    assert out.getvalue().startswith("recorded debugger session (dump) into ")
    session = run_cli("deadlock", "--no-color")               # in the session, plain text
    monkeypatch.setitem(sys.modules, "pykd", None)
    replay = run_cli("deadlock", "--target", rec)
    assert replay[1].startswith("deadlock -- %s (recorded from debugger session (dump)) (" % rec)
    assert _renamed({0: replay}, "%s (recorded from debugger session (dump))" % rec, "debugger session (dump)") \
        == {0: session}
    assert fake.forbidden == []


def test_record_of_commands_with_arguments_replays_byte_identical(tmp_path):
    from test_irp_devstack import seed_case
    from conftest import WIN7
    _, _, irp, fdo, _ = seed_case(WIN7)
    rec = str(tmp_path / "case.json.gz")
    runs = ["irp %x" % irp, "devstack %x" % fdo, "deadlock"]
    code, out, err = run_cli("record", "--target", mock("power_9f4_zteusbnet"), "-o", rec, *runs)
    assert code == 0, err
    for r in runs:
        for fmt in ("text", "json"):
            argv = r.split() + ["--format", fmt]
            original = mock("power_9f4_zteusbnet")
            assert _renamed({0: run_cli(*argv, "--target", rec)}, "%s (recorded from %s)" % (rec, original),
                            original) == {0: run_cli(*argv, "--target", original)}
    doc = json.loads(gzip.decompress(open(rec, "rb").read()))
    assert doc["bugcheck"]["code"] == "0x9f"          # the bug check is always kept


def test_a_replay_of_a_command_not_recorded_is_refused(tmp_path):
    rec = str(tmp_path / "case.json.gz")
    code, out, err = run_cli("record", "--target", mock("eresource_deadlock"), "-o", rec, "deadlock")
    assert code == 0
    code, out, err = run_cli("timerres", "--target", rec)
    assert code == 2 and out == ""
    assert err.startswith("pykd-ext: timerres: %s is a recording that holds no data for timerres "
                          "(it recorded: deadlock)" % rec)
    assert run_cli("deadlock", "--target", rec)[0] == 0


def test_record_checks_its_output_before_reading(tmp_path):
    code, out, err = run_cli("record", "--target", mock("eresource_deadlock"), "-o",
                             str(tmp_path / "nowhere" / "x.json.gz"), "deadlock")
    assert code == 2 and "no folder" in err and out == ""
    copy = tmp_path / "t.json.gz"
    copy.write_bytes(open(mock("eresource_deadlock"), "rb").read())
    code, out, err = run_cli("record", "--target", str(copy), "-o", str(copy), "deadlock")
    assert code == 2 and "is the target being recorded" in err
    assert copy.read_bytes() == open(mock("eresource_deadlock"), "rb").read()


def test_a_bad_command_to_record_is_said_once():
    code, out, err = run_cli("record", "--target", mock("eresource_deadlock"), "-o", "/tmp/unused.json.gz", "irp")
    assert code == 2
    assert err.strip() == "pykd-ext: record: irp: the following arguments are required: irp"


def _record_broken_in(monkeypatch, module, name, rec, *commands):
    """`record` of eresource_deadlock into `rec`, with Ctrl+C arriving when `module.name` is
    called (and only during the recording)."""
    def stop(*a, **k):
        raise KeyboardInterrupt()
    with monkeypatch.context() as m:
        m.setattr(module, name, stop)
        return run_cli("record", "--target", mock("eresource_deadlock"), "-o", rec, *commands)


def test_ctrl_c_stops_record_and_marks_the_recording_partial(tmp_path, monkeypatch):
    # the break lands inside deadlock's analysis (after the waits were read), which catches it
    # and reports what it read before -- the command returns normally, yet record must stop
    # there, not run on to stacks
    import pykd_ext.analysis.crossobject as xo
    rec = str(tmp_path / "case.json.gz")
    code, out, err = _record_broken_in(monkeypatch, xo, "suspect", rec, "deadlock", "stacks")
    assert code == 3, (out, err)
    lines = out.splitlines()
    assert lines[0].startswith("INTERRUPTED (Ctrl+C): partial recording -- %s " % rec)
    assert "not run: stacks" in lines[0]
    assert "  deadlock   interrupted (Ctrl+C): recorded up to there" in lines
    assert "  stacks     not run: interrupted before it" in lines
    doc = json.loads(gzip.decompress(open(rec, "rb").read()))
    assert doc["partial"] == "interrupted during deadlock (Ctrl+C)"
    assert doc["recorded_commands"] == ["deadlock"]         # replayable, with the warning below

    # every replay says the recording is partial, first, and exits 3 (partial results)
    code, out, err = run_cli("deadlock", "--target", rec, "--no-color")
    assert code == 3, err
    lines = out.splitlines()                       # right under the title, as every partial run says it
    assert lines[0].startswith("deadlock -- ") and lines[1] == (
        "WARNING (partial-recording): %s is a partial recording (interrupted during deadlock (Ctrl+C)): what it "
        "did not read is missing, so an empty or clean answer from it proves nothing" % rec)
    code, out, err = run_cli("deadlock", "--target", rec, "--format", "json")
    r = json.loads(out)
    assert r["warnings"][0]["kind"] == "partial-recording" and r["warnings"][0]["address"] is None
    assert "interrupted during deadlock (Ctrl+C)" in r["warnings"][0]["message"]
    assert r["complete"] is False
    code, out, err = run_cli("deadlock", "--target", rec, "--format", "dot")
    assert out.startswith("// WARNING (partial-recording): ")
    # stacks was never run: its replay is refused, not answered from memory never read
    code, out, err = run_cli("stacks", "--target", rec)
    assert code == 2 and "holds no data for stacks" in err


def test_a_partial_recording_that_lacks_a_layout_says_why(tmp_path, monkeypatch):
    # interrupted before deadlock read its lock layouts: the replay cannot run, and says the
    # recording is partial rather than only "unusable target"
    import pykd_ext.analysis.waitgraph as wg
    rec = str(tmp_path / "case.json.gz")
    assert _record_broken_in(monkeypatch, wg, "all_resources", rec, "deadlock")[0] == 3
    code, out, err = run_cli("deadlock", "--target", rec, "--no-color")
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith("pykd-ext: deadlock: unusable target %s (recorded from " % rec)
    assert err.rstrip().endswith("; it is a partial recording (interrupted during deadlock (Ctrl+C))")


def test_a_break_in_a_command_that_does_not_catch_it_stops_record_too(tmp_path, monkeypatch):
    # irp does not catch a break: it reaches record, which keeps what was read and stops
    import pykd_ext.commands.irp as irp_cmd

    def stop(*a, **k):
        raise SystemExit("CTRL+BREAK")
    monkeypatch.setattr(irp_cmd, "run", stop)
    rec = str(tmp_path / "case.json.gz")
    code, out, err = run_cli("record", "--target", mock("eresource_deadlock"), "-o", rec, "stacks",
                             "irp 0xfffffa8000000000", "deadlock")
    assert code == 3
    assert out.startswith("INTERRUPTED (Ctrl+Break): partial recording")      # named as every command names it
    doc = json.loads(gzip.decompress(open(rec, "rb").read()))
    assert doc["partial"] == "interrupted during irp 0xfffffa8000000000 (Ctrl+Break)"
    assert doc["recorded_commands"] == ["irp", "stacks"]
    # a recording made from a partial recording is partial too
    again = str(tmp_path / "again.json.gz")
    code, out, err = run_cli("record", "--target", rec, "-o", again, "stacks")
    assert code == 3                                        # what it recorded is partial
    doc = json.loads(gzip.decompress(open(again, "rb").read()))
    assert doc["partial"] == "recorded from a partial recording (%s)" % "interrupted during irp 0xfffffa8000000000 (Ctrl+Break)"


def test_a_complete_recording_is_not_partial(tmp_path):
    rec = str(tmp_path / "case.json.gz")
    code, out, err = run_cli("record", "--target", mock("eresource_deadlock"), "-o", rec, "deadlock")
    assert code == 0 and not out.startswith("INTERRUPTED")
    assert json.loads(gzip.decompress(open(rec, "rb").read()))["partial"] is None
    assert "partial-recording" not in run_cli("deadlock", "--target", rec, "--format", "json")[1]


def test_recording_a_recording_keeps_to_what_it_holds(tmp_path):
    """A recording of deadlock re-recorded with every command: only deadlock is recorded; the
    others are said to have no data, and replaying them is refused, not answered (review of
    issue 17: timerres answered 'No process has asked' from memory never read)."""
    first, second = str(tmp_path / "r1.json.gz"), str(tmp_path / "r2.json.gz")
    assert run_cli("record", "--target", mock("eresource_deadlock"), "-o", first, "deadlock")[0] == 0
    code, out, err = run_cli("record", "--target", first, "-o", second)
    assert code == 0, err
    assert "  deadlock   recorded" in out.splitlines()
    assert any(l.startswith("  timerres   not recorded: ") and "holds no data for timerres" in l
               for l in out.splitlines())
    doc = json.loads(gzip.decompress(open(second, "rb").read()))
    assert doc["recorded_commands"] == ["deadlock"]
    code, out, err = run_cli("timerres", "--target", second)
    assert code == 2 and "holds no data for timerres" in err


def test_record_checks_its_output_before_the_target_is_opened(tmp_path, monkeypatch):
    """A bad -o is one line and exit 2 before a dump is loaded or a KDNET session attached."""
    import pykd_ext.cli as cli

    def never(*a, **k):
        raise AssertionError("the target was opened before the output was checked")
    monkeypatch.setattr(cli, "open_target", never)
    code, out, err = run_cli("record", "--dump", "MEMORY.DMP", "-o", str(tmp_path / "no" / "such" / "r.json.gz"))
    assert code == 2 and err.startswith("pykd-ext: record: cannot write ") and "no folder" in err
