"""Text tables never reinterpret what was read (issue 17): tabulate parses cells that look
like numbers unless told not to -- 0.10 (Python 3.10+) printed a device named `000000e5` as
`0` and Cid `0004.1070` as `4.107`; 0.8 strips leading zeros the same way.  Every table is
built with number parsing off, whatever tabulate is installed; the rows below have names
and Cids that look like numbers."""
import ast
import os

import pytest

from conftest import ROOT, WIN10, WIN7, run_cli
from test_waitgraph import eresource_abba


def _tabulate_calls():
    for folder, _, files in os.walk(os.path.join(ROOT, "pykd_ext")):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                tree = ast.parse(open(path, encoding="utf-8").read(), path)
                for node in ast.walk(tree):
                    if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "tabulate":
                        yield os.path.relpath(path, ROOT), node


def test_every_table_is_built_with_number_parsing_off():
    calls = list(_tabulate_calls())
    assert len(calls) >= 8                       # every command's tables, not a stray one
    for where, node in calls:
        kw = {k.arg: k.value for k in node.keywords}
        assert "disable_numparse" in kw and getattr(kw["disable_numparse"], "value", None) is True, \
            "%s:%d: tabulate(...) without disable_numparse=True" % (where, node.lineno)
        headers = kw.get("headers")
        if isinstance(headers, (ast.List, ast.Tuple)):      # every column says what it holds
            blank = [i for i, h in enumerate(headers.elts) if isinstance(h, ast.Constant) and not str(h.value).strip()]
            assert not blank, "%s:%d: tabulate(...) with an unlabelled column" % (where, node.lineno)


@pytest.mark.parametrize("build", [WIN7, WIN10])
def test_number_like_process_names_and_cids_print_as_read(tmp_path, build):
    # a process whose image name is digits, thread ids that read as a decimal and a float
    b, (t1, t2), _ = eresource_abba(build, process="1234", tids=(0x1070, 0x0e50))
    path = str(tmp_path / "t.json.gz")
    b.save(path)
    code, out, err = run_cli("deadlock", "--target", path, "--no-color")
    assert code == 0, err
    rows = out.split("THREADS", 1)[1].splitlines()
    row = [l for l in rows if "0x%x" % t1 in l][0].split()
    assert "0004.1070" in row and "1234" in row
    row = [l for l in rows if "0x%x" % t2 in l][0].split()
    assert "0004.0e50" in row


def test_colour_can_be_forced_through_a_pager(monkeypatch):
    """Output to a pipe is plain; `--color` or FORCE_COLOR=1 keeps the colours (`| less -R`);
    --no-color and NO_COLOR win over FORCE_COLOR; --color with --no-color is a usage error."""
    target = ("--target", os.path.join(ROOT, "mock_targets", "dpc_133_athwbx.json.gz"))
    code, plain, _ = run_cli("dpcs", *target)
    assert code == 0 and "\x1b[" not in plain
    code, forced, _ = run_cli("dpcs", "--color", *target)
    assert code == 0 and "\x1b[" in forced
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert "\x1b[" in run_cli("dpcs", *target)[1]
    assert "\x1b[" not in run_cli("dpcs", "--no-color", *target)[1]
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[" not in run_cli("dpcs", *target)[1]
    code, _, err = run_cli("dpcs", "--color", "--no-color", *target)
    assert code == 2 and "not allowed with" in err
