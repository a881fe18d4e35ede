"""Output that cannot fail (issue 18): names from target memory with characters a console
cannot encode, lone surrogates and control characters, written as text, DML and JSON to a
cp1252 stream -- what a redirected stdout is on Windows."""
import base64
import io
import json
import os
import subprocess
import sys

import pytest

from pykd_ext.cli import main
from pykd_ext.mock.builder import ScenarioBuilder
from pykd_ext.render.out import printable, safe_stream
from pykd_ext.target.mock import save_document

from conftest import ROOT, WIN7

PLACEHOLDER = "QQQQQQ"
#  Cyrillic (not in cp1252), a lone surrogate, an escape and a newline: six UTF-16 units
NASTY = "\u0416\u0414\ud800\x1b\n\u20ac"


def _target(tmp_path):
    """A device whose name is NASTY, patched into the memory the builder laid out (the builder
    encodes names strictly; a kernel's UTF-16 is not validated)."""
    b = ScenarioBuilder(WIN7)
    b.module("ZTEusbnet", "ZTEusbnet.sys")
    drv = b.driver_object("\\Driver\\ZTEusbnet")
    dev, _ = b.device_object(drv, 0x100, name=PLACEHOLDER, address=0xfffffa800c089050)
    doc = b.document()
    old = PLACEHOLDER.encode("utf-16-le")
    new = NASTY.encode("utf-16-le", "surrogatepass")
    hits = 0
    for r in doc["memory"]:
        data = base64.b64decode(r["data"])
        if old in data:
            hits += data.count(old)
            r["data"] = base64.b64encode(data.replace(old, new)).decode("ascii")
    assert hits == 1
    path = str(tmp_path / "nasty.json.gz")
    save_document(doc, path)
    return path, dev


ESCAPED = "\u0416\u0414\\ud800\\x1b\\x0a\u20ac"


def test_names_from_memory_are_made_printable_where_decoded(tmp_path):
    path, dev = _target(tmp_path)
    code, out, err = _run(["devstack", hex(dev), "--target", path, "--no-color"])
    assert code == 0, err
    assert ESCAPED in out and "\ud800" not in out and "\x1b" not in out


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    return main(argv, out=out, err=err), out.getvalue(), err.getvalue()


class Cp1252(io.TextIOWrapper):
    def __init__(self):
        io.TextIOWrapper.__init__(self, io.BytesIO(), encoding="cp1252", errors="strict")

    def text(self):
        self.flush()
        return self.buffer.getvalue().decode("cp1252")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_cp1252_stream_gets_every_line(tmp_path, fmt):
    path, dev = _target(tmp_path)
    out, err = Cp1252(), io.StringIO()
    assert main(["devstack", hex(dev), "--target", path, "--format", fmt], out=out, err=err) == 0, err.getvalue()
    text = out.text()
    if fmt == "json":
        assert json.loads(text)["devices"][0]["device_name"] == ESCAPED
    else:
        assert "\\u0416\\u0414\\ud800\\x1b\\x0a\u20ac" in text     # Zhe and De escaped too; the euro is cp1252


class Dml(object):
    """pykd's stream inside WinDbg, refusing what cp1252 cannot hold."""

    def __init__(self):
        self.parts = []

    def write(self, text):
        self.parts.append(text.encode("cp1252").decode("cp1252"))

    def writedml(self, text):
        self.parts.append(text.encode("cp1252").decode("cp1252"))


def test_dml_is_written_safely_too(tmp_path):
    path, dev = _target(tmp_path)
    out = Dml()
    assert main(["devstack", hex(dev), "--target", path], out=out, err=io.StringIO()) == 0
    assert '<link cmd="' in "".join(out.parts) and "\\u0416" in "".join(out.parts)


def test_redirected_stdout_in_cp1252_through_the_console_script(tmp_path):
    """PYTHONIOENCODING=cp1252 pykd-ext devstack ... > file: exit 0, every line written."""
    path, dev = _target(tmp_path)
    dest = tmp_path / "out.txt"
    env = dict(os.environ, PYTHONIOENCODING="cp1252", PYTHONPATH=ROOT)
    with open(str(dest), "wb") as f:
        p = subprocess.run([sys.executable, "-m", "pykd_ext", "devstack", hex(dev), "--target", path],
                           stdout=f, stderr=subprocess.PIPE, env=env, cwd=ROOT, timeout=60)
    assert p.returncode == 0, p.stderr.decode("utf-8", "replace")
    text = dest.read_bytes().decode("cp1252")
    assert "\\u0416\\u0414\\ud800\\x1b\\x0a\u20ac" in text and "\\Driver\\ZTEusbnet" in text


def test_a_surrogate_in_a_file_string_is_printable_in_every_renderer(tmp_path):
    """A recording whose origin and symbolizations carry lone surrogates and controls."""
    path, dev = _target(tmp_path)
    from pykd_ext.target.mock import MockTarget
    doc = MockTarget.load(path).doc
    doc["origin"] = "case\ud800\x07.dmp"
    p2 = str(tmp_path / "origin.json")
    with open(p2, "w", encoding="utf-8", errors="surrogatepass") as f:
        json.dump(doc, f)
    for cmd in (["devstack", hex(dev)], ["irp", hex(dev)], ["deadlock"], ["powerirps"], ["dpcs"], ["timerres"]):
        for fmt in ([], ["--format", "json"]):
            out = Cp1252()
            code = main(cmd + ["--target", p2] + fmt, out=out, err=io.StringIO())
            assert code in (0, 2, 3)
            assert "\ud800" not in out.text() and "\x07" not in out.text()


def test_printable_and_safe_stream_units():
    assert printable("\\Driver\\ZTEusbnet") == "\\Driver\\ZTEusbnet"
    assert printable("a\x00b\u202ec\U0001f600\ud800") == "a\\x00b\\u202ec\U0001f600\\ud800"
    out = Cp1252()
    s = safe_stream(out)
    s.write("\u0416 \ud800 ok\n")
    assert out.text() == "\\u0416 \\ud800 ok\n"
    assert safe_stream(s) is s
