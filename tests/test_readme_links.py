"""README's "Links inside WinDbg" list is what the DML output carries: every link it promises
is emitted by that command on a shipped target, and every link a command emits is in it."""
import io
import os
import re

import pytest

from conftest import MOCKS, ROOT
from test_pykd_backend import DebuggerOut
from pykd_ext.cli import main
from pykd_ext.commands import COMMANDS

SHIPPED = sorted(os.path.join(MOCKS, n) for n in os.listdir(MOCKS) if n.endswith(".json.gz"))


def promised():
    """{command: {link kind}} from README's list: `- `cmd`[, `cmd`]: what → `kind`, ...; ...`."""
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = text.split("Links inside WinDbg", 1)
    assert len(section) == 2, "README has no 'Links inside WinDbg' list"
    out = {}
    for line in section[1].split("\n\n", 2)[1].splitlines():
        m = re.match(r"^- ((?:`\w+`(?:, )?)+): (.*)$", line)
        assert m, "not a list line: %r" % line
        kinds = set()
        for item in m.group(2).split("; "):
            what, arrow, links = item.partition(" → ")
            assert arrow, "no → in %r" % item
            kinds.update(re.findall(r"`([^`]+)`", links))
        for cmd in re.findall(r"`(\w+)`", m.group(1)):
            out[cmd] = kinds
    return out


def kind(cmd):
    """A link's command without its address: `dt nt!_KDPC`, `!thread`."""
    words = cmd.split()
    return " ".join(words[:2]) if words[0] == "dt" else words[0]


def _dml(argv):
    out = DebuggerOut()
    code = main(argv, out=out, err=io.StringIO())
    assert code in (0, 2, 3), argv
    return "".join(out.dml)


def _arguments(path):
    """Addresses for irp and devstack: the IRPs and devices powerirps reports on this target."""
    out = io.StringIO()
    main(["powerirps", "--target", path, "--format", "json"], out=out, err=io.StringIO())
    text = out.getvalue()
    irps = sorted(set(re.findall(r'"irp": "(0x[0-9a-f]+)"', text)))[:2]
    devices = sorted(set(re.findall(r'"device": "(0x[0-9a-f]+)"', text)))[:2]
    return {"irp": irps, "devstack": devices}


@pytest.fixture(scope="module")
def emitted():
    """{command: {link kind}} over every shipped target."""
    out = {name: set() for name in COMMANDS if name != "record"}
    for path in SHIPPED:
        args = _arguments(path)
        for name in out:
            runs = [[a] for a in args[name]] if getattr(COMMANDS[name], "NEEDS_ARGUMENTS", False) else [[]]
            for extra in runs:
                dml = _dml([name] + extra + ["--target", path])
                out[name].update(kind(c) for c in re.findall(r'<link cmd="([^"]*)">', dml))
    return out


def test_every_link_readme_promises_is_emitted(emitted):
    for cmd, kinds in promised().items():
        assert cmd in emitted, "README lists links for %s, which is no command" % cmd
        assert kinds <= emitted[cmd], "%s: README promises %s, never emitted" % (cmd, sorted(kinds - emitted[cmd]))


def test_every_link_emitted_is_in_readme(emitted):
    p = promised()
    for cmd, kinds in emitted.items():
        assert kinds <= p.get(cmd, set()), "%s emits %s, not in README's list" % (cmd, sorted(kinds - p.get(cmd, set())))
