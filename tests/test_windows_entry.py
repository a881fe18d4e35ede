"""Issue 14: pykd_ext as the pykd bootstrapper (ivellioscolin/pykd-ext) and pykd really run it.

Each test imitates one behaviour of the real pieces, cited where it is imitated (here or in
tests/fake_pykd.py): how `!py` runs a script file and a module, how it delivers Ctrl+Break,
what its output stream is; what a standalone pykd session has (no symbol path) and leaves
behind (a KDNET target broken in); how real symbols describe members no layout can hold.
"""
import configparser
import io
import json
import os
import subprocess
import sys
import types

import pytest

from conftest import MOCKS, ROOT, WIN10, mock, run_cli
from fake_pykd import FakePykd
from pykd_ext import cli
from pykd_ext.commands import COMMANDS
from pykd_ext import progress
from pykd_ext.progress import Progress
from pykd_ext.target import pykd_backend
from pykd_ext.target.mock import MockTarget
from pykd_ext.target.pykd_backend import PykdTarget

# looked up when used, so that this file also runs (and fails) against the code before issue 14


def default_symbol_path():
    return pykd_backend.default_symbol_path()

SCRIPTS = os.path.join(ROOT, "scripts")
CASE = mock("eresource_deadlock")

# The bootstrapper's `!py` as it runs Python 3 code (pykd-ext sources/windbgext.cpp):
# sys.stdout/stderr become DbgOut objects (421-424; dbgout.h:24-72: write, writedml, flush,
# encoding "ascii", isatty False); sys.argv is set with PySys_SetArgv_Py3, argv[0] the full
# script path, or "" for -m (443-459; PySys_SetArgv also puts the script's directory first on
# sys.path); a script file is run by PyRun_FileExFlags into the fresh sub-interpreter's
# __main__ dict, which has no __file__ (472-483); -m runs runpy.run_module(NAME,
# run_name='__main__', alter_sys=True) (461-468); SystemExit is dropped silently, any other
# exception printed (handleException, 632-640).
HARNESS = r'''
import builtins, os, runpy, sys

class DbgOut(object):
    def __init__(self, stream):
        self._s = stream
    def write(self, text):
        self._s.write(text)
    def writedml(self, text):
        self._s.write(text)
    def flush(self):
        pass
    encoding = "ascii"
    def isatty(self):
        return False

mode, target, args = sys.argv[1], sys.argv[2], sys.argv[3:]
sys.stdout, sys.stderr = DbgOut(sys.__stdout__), DbgOut(sys.__stderr__)
globals_ = {"__name__": "__main__", "__builtins__": builtins}     # a fresh __main__: no __file__
try:
    if mode == "-m":
        sys.argv = [""] + args
        exec("import runpy\nrunpy.run_module(%r, run_name='__main__', alter_sys=True)\n" % target,
             globals_, globals_)
    else:
        sys.argv = [target] + args
        sys.path.insert(0, os.path.dirname(target))
        with open(target) as f:
            code = compile(f.read(), target, "exec")
        exec(code, globals_, globals_)
except SystemExit:
    pass
mod = sys.modules.get("pykd_ext")
sys.__stderr__.write("\nHARNESS pykd_ext from %s\n" % (os.path.dirname(os.path.dirname(mod.__file__))
                                                          if mod else None))
'''


def bootstrapper(tmp_path, mode, target, *args, env=None, cwd=None):
    """Run `!py [-m] TARGET ARGS` as the bootstrapper does, in a fresh Python whose sys.path
    does not hold this checkout (only what the script itself adds)."""
    harness = tmp_path / "harness.py"
    harness.write_text(HARNESS)
    e = dict(os.environ)
    e.pop("PYTHONPATH", None)
    e.update(env or {})
    p = subprocess.run([sys.executable, str(harness), mode, target] + list(args), capture_output=True,
                       text=True, cwd=str(cwd or tmp_path), env=e, timeout=120)
    err, _, where = p.stderr.rpartition("\nHARNESS pykd_ext from ")
    return p.stdout, err, where.strip()


def search_path(name, cwd, path):
    """getScriptFileName (windbgext.cpp:711-725): SearchPathA(NULL, name, ".py") -- the
    current directory, then PATH; ".py" appended when the name has no extension."""
    if not os.path.splitext(name)[1]:
        name += ".py"
    for d in [str(cwd)] + path.split(os.pathsep):
        candidate = os.path.join(d, name)
        if d and os.path.isfile(candidate):
            return os.path.abspath(candidate)
    return None


# -- 1. entry points as the bootstrapper runs them ------------------------------------------------

@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_script_runs_without_file_as_the_bootstrapper_runs_it(command, tmp_path):
    script = os.path.join(SCRIPTS, command + ".py")
    out, err, where = bootstrapper(tmp_path, "file", script, "--help")
    assert "NameError" not in err and "Traceback" not in err, err
    assert "usage: pykd-ext %s" % command in out
    assert where == ROOT                    # this checkout, found from sys.argv[0]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_script_by_path_prints_what_the_cli_prints(fmt, tmp_path):
    out, err, where = bootstrapper(tmp_path, "file", os.path.join(SCRIPTS, "deadlock.py"),
                                   "--target", CASE, "--format", fmt, "--no-color")
    assert (out, err.strip()) == (run_cli("deadlock", "--target", CASE, "--format", fmt, "--no-color")[1], "")


def test_py_name_finds_the_script_through_path(tmp_path):
    """`!py deadlock` with scripts\\ on PATH."""
    path = os.pathsep.join([str(tmp_path / "elsewhere"), SCRIPTS])
    script = search_path("deadlock", tmp_path, path)
    assert script == os.path.join(SCRIPTS, "deadlock.py")
    out, err, where = bootstrapper(tmp_path, "file", script, "--target", CASE, "--format", "json",
                                   env={"PATH": path + os.pathsep + os.environ.get("PATH", "")})
    assert json.loads(out) == json.loads(run_cli("deadlock", "--target", CASE, "--format", "json")[1])
    assert where == ROOT


def test_py_m_pykd_ext_runs_the_package(tmp_path):
    """`!py -m pykd_ext deadlock`: pykd_ext installed in (here: on the path of) that Python."""
    out, err, where = bootstrapper(tmp_path, "-m", "pykd_ext", "deadlock", "--target", CASE,
                                   "--format", "json", env={"PYTHONPATH": ROOT})
    assert "Traceback" not in err
    assert json.loads(out) == json.loads(run_cli("deadlock", "--target", CASE, "--format", "json")[1])
    assert where == ROOT


# -- 2. installable everywhere ------------------------------------------------------------------

WINDOWS_311 = {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt",
               "python_version": "3.11", "python_full_version": "3.11.7",
               "implementation_name": "cpython", "platform_machine": "AMD64"}


def _requirements():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"))
    base = [r.strip() for r in cfg["options"]["install_requires"].splitlines() if r.strip()]
    extras = {k: [r.strip() for r in v.splitlines() if r.strip()]
              for k, v in cfg["options.extras_require"].items()}
    return base, extras


def test_pykd_is_an_extra_not_a_requirement_on_windows():
    """PyPI's pykd has wheels for cp27, cp35-cp39 only and no sdist: a hard requirement makes
    `pip install .` fail on Windows with Python 3.10+.  pip evaluates sys_platform markers for
    the interpreter it runs in, not for --platform, so the markers are evaluated here for
    Windows / Python 3.11."""
    from packaging.requirements import Requirement
    base, extras = _requirements()
    needed = [Requirement(r) for r in base]
    needed = [r.name for r in needed if r.marker is None or r.marker.evaluate(WINDOWS_311)]
    assert "pykd" not in needed and set(needed) == {"tabulate", "networkx", "colorama"}
    assert [Requirement(r).name for r in extras["pykd"]] == ["pykd"]
    assert Requirement(extras["pykd"][0]).marker.evaluate(dict(WINDOWS_311, python_version="3.9"))


def test_the_readme_names_the_bootstrappers_python():
    text = open(os.path.join(ROOT, "README.md")).read()
    section = text[text.index("## Three ways to run it"):text.index("## Recording a target")]
    for line in ("!pip -3.9 install", "!py -3.9 -m pykd_ext deadlock", "!select -3.9", "pykd_ext[pykd]",
                 "_NT_SYMBOL_PATH", "--symbol-path", "--max-seconds", "--leave-broken"):
        assert line in section, line


# -- 3. symbols for standalone sessions ---------------------------------------------------------

@pytest.fixture
def pykd_fake(monkeypatch):
    monkeypatch.delenv("_NT_SYMBOL_PATH", raising=False)
    f = FakePykd()
    monkeypatch.setitem(sys.modules, "pykd", f)
    return f


def test_a_dump_without_symbol_path_gets_the_public_server_and_says_so(pykd_fake):
    code, out, err = run_cli("deadlock", "--dump", CASE)
    assert code == 0, err
    assert out.replace(CASE, "X") == run_cli("deadlock", "--target", CASE)[1].replace(CASE, "X")
    assert pykd_fake.symbol_path == default_symbol_path()
    assert "msdl.microsoft.com/download/symbols" in pykd_fake.symbol_path
    assert err.splitlines() == ["pykd-ext: no symbol path set (_NT_SYMBOL_PATH is empty): using %s; "
                                "--symbol-path or _NT_SYMBOL_PATH sets another" % default_symbol_path()]


def test_symbol_path_option_and_environment_win(pykd_fake, monkeypatch):
    code, out, err = run_cli("deadlock", "--dump", CASE, "--symbol-path", "srv*D:\\sym*https://x")
    assert code == 0 and err == ""
    assert pykd_fake.symbol_path == "srv*D:\\sym*https://x"
    monkeypatch.setenv("_NT_SYMBOL_PATH", "D:\\mine")
    f = FakePykd()
    monkeypatch.setitem(sys.modules, "pykd", f)
    code, out, err = run_cli("deadlock", "--dump", CASE)
    assert code == 0 and err == "" and f.symbol_path == "D:\\mine" and f.calls["setSymbolPath"] == 0


def test_no_kernel_types_is_one_line_naming_what_to_set(pykd_fake, monkeypatch):
    monkeypatch.setattr(pykd_fake, "_reload", lambda name: None)      # the server has no PDB
    code, out, err = run_cli("deadlock", "--dump", CASE)
    assert code == 2 and out == ""
    last = err.splitlines()[-1]
    assert len(err.splitlines()) == 2 and "no kernel types" in last and "_NT_SYMBOL_PATH" in last


# -- 4. interrupts as they really arrive --------------------------------------------------------

class DbgOut(io.StringIO):
    """The bootstrapper's stream (pykd-ext sources/dbgout.h:24-72): every write is one
    debugger output call; isatty() is False; writedml exists."""

    def __init__(self):
        io.StringIO.__init__(self)
        self.calls = 0

    def write(self, text):
        self.calls += 1
        return io.StringIO.write(self, text)

    def writedml(self, text):
        self.calls += 1
        io.StringIO.write(self, text)

    def isatty(self):
        return False


def _in_windbg(monkeypatch, version, case=CASE, break_at=None):
    f = FakePykd(MockTarget.load(case), windbg=True, python_version=version)
    monkeypatch.setitem(sys.modules, "pykd", f)
    monkeypatch.setattr(cli, "Progress", lambda write, prefix: Progress(write, prefix, after=0, interval=0))
    if break_at is not None:
        real, n = f.getStack, [0]

        def get_stack(inlineFrames=False):
            n[0] += 1
            if n[0] == break_at:
                f.user_break()
            return real(inlineFrames)
        monkeypatch.setattr(f, "getStack", get_stack)
    return f


def test_progress_inside_windbg_is_on_and_never_promises_a_break_that_cannot_arrive(monkeypatch):
    f = _in_windbg(monkeypatch, (3, 11), break_at=1)
    out, err = DbgOut(), DbgOut()
    assert cli.main(["deadlock", "--no-color"], out=out, err=err) == 0
    assert f.undelivered_breaks == 1 and "interrupted" not in out.getvalue()   # never reached us
    assert "pages read" in err.getvalue()                   # progress on: the stream has writedml
    assert progress.STOP_NONE in err.getvalue() and "Ctrl+C" not in err.getvalue()


def test_on_python_3_8_the_break_arrives_and_progress_says_so(monkeypatch):
    f = _in_windbg(monkeypatch, (3, 8), break_at=2)
    monkeypatch.setattr(cli.sys, "version_info", (3, 8, 18, "final", 0))
    out, err = DbgOut(), DbgOut()
    assert cli.main(["deadlock", "--no-color"], out=out, err=err) == 3        # partial results
    assert "interrupted (CTRL+BREAK)" in out.getvalue()
    assert progress.STOP_CTRL_BREAK in err.getvalue()
    assert cli.stop_hint(io.StringIO()) == progress.STOP_CTRL_C         # a console: Ctrl+C does work


def test_max_seconds_gives_the_partial_result_with_a_warning(monkeypatch):
    f = _in_windbg(monkeypatch, (3, 11))
    now = [0.0]
    real = f.loadBytes

    def slow(offset, count, phyAddr=False):
        now[0] += 1.0                                       # a second per page
        return real(offset, count, phyAddr)
    monkeypatch.setattr(f, "loadBytes", slow)
    monkeypatch.setattr("pykd_ext.progress.time", types.SimpleNamespace(monotonic=lambda: now[0]))
    out, err = DbgOut(), DbgOut()
    assert cli.main(["deadlock", "--no-color", "--max-seconds", "3", "--format", "json"], out=out, err=err) == 3
    doc = json.loads(out.getvalue())
    assert doc["complete"] is False and doc["interrupted"] == "--max-seconds 3"
    assert any("--max-seconds 3 reached" in w["message"] for w in doc["warnings"])
    assert "--max-seconds 3 reached: the results are partial" in err.getvalue()


# -- 5. KDNET sessions leave the target as they found it -----------------------------------------

KD = "net:port=50000,key=1.2.3.4"


@pytest.mark.parametrize("leave", [False, True])
def test_kdnet_resumes_the_target_unless_asked_not_to(pykd_fake, leave, monkeypatch):
    monkeypatch.setenv("_NT_SYMBOL_PATH", "srv*C:\\Symbols*https://msdl.microsoft.com/download/symbols")
    pykd_fake.kernels[KD] = CASE
    code, out, err = run_cli("deadlock", "--kdnet", KD, *(["--leave-broken"] if leave else []))
    assert code == 0 and "DEADLOCK 1" in out
    assert "the target is broken in (stopped) while the command reads it" in err
    assert "Ctrl+C gives up" not in err                      # attachKernel cannot be interrupted
    assert pykd_fake.broken_in is leave and pykd_fake.detached is not leave
    assert pykd_fake.forbidden == []


def test_kdnet_resumes_even_when_the_command_fails(pykd_fake, monkeypatch):
    pykd_fake.kernels[KD] = CASE
    monkeypatch.setattr(pykd_fake, "_reload", lambda name: None)      # no symbols: exit 2
    code, out, err = run_cli("deadlock", "--kdnet", KD)
    assert code == 2 and pykd_fake.detached and not pykd_fake.broken_in


def test_a_live_kernel_has_no_bug_check_and_it_is_none(pykd_fake, monkeypatch):
    monkeypatch.setenv("_NT_SYMBOL_PATH", "D:\\sym")
    pykd_fake.kernels[KD] = mock("power_9f4_zteusbnet")
    pykd_fake.attachKernel(KD)
    assert pykd_fake.bugCheckData() == (0, 0, 0, 0, 0)
    assert PykdTarget(pykd_fake, "k").bugcheck() is None


# -- 6. inside WinDbg --------------------------------------------------------------------------

def test_json_reaches_the_debugger_in_one_call(monkeypatch):
    _in_windbg(monkeypatch, (3, 11))
    out = DbgOut()
    assert cli.main(["deadlock", "--format", "json", "--no-progress"], out=out, err=DbgOut()) == 0
    assert out.calls == 1
    assert json.loads(out.getvalue())["cycles"]


def test_layouts_skip_static_and_constant_members_and_take_incomplete_arrays():
    f = FakePykd(MockTarget.load(mock("eresource_deadlock_win10")))
    f.add_member("_KTHREAD", "ThreadCount", "static")
    f.add_member("_KTHREAD", "MaxSpin", "const")
    f.add_member("_ERESOURCE", "Tail", "incomplete", offset=0x68)
    live = PykdTarget(f, "t").layouts()
    k = live.layout("_KTHREAD")
    assert not k.has("ThreadCount") and not k.has("MaxSpin") and k.has("WaitBlock")
    tail = live.layout("_ERESOURCE").field("Tail")
    assert (tail.offset, tail.size, tail.type) == (0x68, 0, "unsigned char[0]")
    assert {(t, m) for t, m, _ in live.skipped} >= {("_KTHREAD", "ThreadCount"), ("_KTHREAD", "MaxSpin")}


def test_a_pykd_error_from_any_call_is_one_line(monkeypatch):
    f = _in_windbg(monkeypatch, (3, 11))

    def broken():
        raise f.DbgException("IDebugControl::IsPointer64Bit failed HRESULT 0x8000FFFF")
    monkeypatch.setattr(f, "ptrSize", broken)
    code, out, err = run_cli("deadlock")
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith("pykd-ext: deadlock: debugger session (dump): DbgException: IDebugControl")


@pytest.mark.parametrize("users_choice", [None, 0xfffffa8000c0bb30])
def test_the_implicit_thread_goes_back_to_the_debuggers_default(monkeypatch, users_choice):
    f = _in_windbg(monkeypatch, (3, 11))
    if users_choice:
        f.setImplicitThread(users_choice)                    # .thread X before !py
    assert run_cli("deadlock")[0] == 0
    assert f.calls["getStack"] > 1
    if users_choice:
        assert (f.implicit_thread, f.explicit_thread) == (users_choice, True)
    else:
        assert (f.implicit_thread, f.explicit_thread) == (f.default_thread, False)
