"""README's examples are the real output: every fenced block that follows a paragraph naming
the command that makes it (`pykd-ext CMD ... --target mock_targets/X`) is checked against
that command's output today, line by line in order ("..." stands for lines left out)."""
import os
import re
import shlex

import pytest

from conftest import run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_COMMAND = re.compile(r"`(pykd-ext [^`]*--target mock_targets/[^`]*|python -m pykd_ext\.batch [^`]*)`")


def examples():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    found = []
    for m in re.finditer(r"\n((?:[^\n]+\n)+)\n```\n(.*?)```\n", text, re.S):
        cmds = _COMMAND.findall(m.group(1))
        if cmds:
            found.append((cmds[-1], m.group(2).splitlines()))
    return found


def test_the_readme_has_examples_to_check():
    cmds = [c.split()[1] if c.startswith("pykd-ext") else c.split()[2] for c, _ in examples()]
    for name in ("triage", "deadlock", "powerirps", "dpcs", "stacks", "running", "timerres", "pykd_ext.batch"):
        assert name in cmds, "README shows no %s output after its command" % name


@pytest.mark.parametrize("command,lines", examples(), ids=lambda v: v if isinstance(v, str) else "")
def test_readme_example_is_the_real_output(command, lines):
    argv = shlex.split(command)
    if argv[0] == "python":                      # python -m pykd_ext.batch ...
        from pykd_ext import batch
        buf = []
        cwd = os.getcwd()
        os.chdir(ROOT)
        try:
            batch.run(argv[3:argv.index("--jobs")] if "--jobs" in argv else argv[3:], 2, buf.append)
        finally:
            os.chdir(cwd)
        out = "".join(buf)
    else:
        code, out, err = run_cli(*(argv[1:] + ["--no-color"]))
        assert code in (0, 3), err
    got = [l.rstrip() for l in out.splitlines()]
    pos = 0
    for line in lines:
        if line.strip() == "...":
            continue
        want = line.rstrip()
        try:
            pos = got.index(want, pos) + 1
        except ValueError:
            pytest.fail("README's output of `%s` has a line the command does not print (in "
                        "this order):\n%s" % (command, want))
