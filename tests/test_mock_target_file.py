"""Loading and validating mock target files; the mock backend's memory and symbols."""
import gzip
import json

import pytest

from pykd_ext.errors import MemoryFault, SymbolNotFound, TargetFileError
from pykd_ext.target.mock import MockTarget

from conftest import WIN10


def doc(**over):
    d = {"format": "pykd_ext-mock-target", "version": 1, "build": WIN10,
         "modules": [{"name": "nt", "image": "ntkrnlmp.exe", "base": "0xfffff80000000000", "size": "0x100000"}],
         "symbols": {"nt!Foo": "0xfffff80000001000", "nt!Bar": "0xfffff80000002000"},
         "memory": [{"address": "0x1000", "data": "AAECAw=="},          # 00 01 02 03
                    {"address": "0x1004", "data": "BAUGBw=="},          # contiguous
                    {"address": "0x2000", "data": "CAk="}],
         "stacks": {"0x5000": [{"ip": "0xfffff80000001010", "sp": "0x9000"}]},
         "processors": [{"index": 0, "prcb": "0x3000"}], "bugcheck": None}
    d.update(over)
    return d


def write(tmp_path, d, gz=True, name="t.json.gz"):
    p = tmp_path / name
    raw = json.dumps(d).encode()
    p.write_bytes(gzip.compress(raw) if gz else raw)
    return str(p)


def load_error(tmp_path, d):
    with pytest.raises(TargetFileError) as e:
        MockTarget.load(write(tmp_path, d))
    msg = str(e.value)
    assert "\n" not in msg and "t.json.gz" in msg
    return msg


def test_valid_file_loads_with_its_parts(tmp_path):
    t = MockTarget.load(write(tmp_path, doc()))
    assert t.read(0x1002, 4) == b"\x02\x03\x04\x05"          # across two contiguous ranges
    assert t.symbol("nt!Foo") == 0xfffff80000001000
    assert t.stack(0x5000)[0].sp == 0x9000
    assert t.processors()[0].prcb == 0x3000
    assert t.bugcheck() is None
    assert t.layouts().build == WIN10


def test_read_into_a_gap_faults_at_the_first_missing_byte(tmp_path):
    t = MockTarget.load(write(tmp_path, doc()))
    with pytest.raises(MemoryFault) as e:
        t.read(0x1006, 8)
    assert e.value.address == 0x1008


def test_describe_symbol_offset_module_and_bare_hex(tmp_path):
    t = MockTarget.load(write(tmp_path, doc()))
    assert t.describe(0xfffff80000001000) == "nt!Foo"
    assert t.describe(0xfffff80000001010) == "nt!Foo+0x10"
    assert t.describe(0xfffff80000000010) == "nt+0x10"
    assert t.describe(0x1234) == "0x1234"
    assert t.module_at(0xfffff80000002000).image == "ntkrnlmp.exe"
    with pytest.raises(SymbolNotFound):
        t.symbol("nt!Nope")


def test_truncated_gzip_is_one_clear_line(tmp_path):
    p = tmp_path / "t.json.gz"
    p.write_bytes(gzip.compress(json.dumps(doc()).encode())[:60])
    with pytest.raises(TargetFileError) as e:
        MockTarget.load(str(p))
    assert "truncated" in str(e.value) and "t.json.gz" in str(e.value)


def test_truncated_json_is_one_clear_line(tmp_path):
    p = tmp_path / "t.json"
    p.write_text(json.dumps(doc())[:100])
    with pytest.raises(TargetFileError) as e:
        MockTarget.load(str(p))
    assert "not valid JSON" in str(e.value)


@pytest.mark.parametrize("over, where", [
    ({"format": "something-else"}, "format"),
    ({"version": 7}, "version"),
    ({"build": "win95"}, "build"),
    ({"memory": [{"address": "1000", "data": ""}]}, "memory[0].address"),
    ({"memory": [{"address": "0x1000", "data": "!!"}]}, "memory[0].data"),
    ({"memory": [{"address": "0x1000", "data": "AAAA"}, {"address": "0x1001", "data": "AA=="}]}, "overlap"),
    ({"symbols": {"Foo": "0x1"}}, "symbols"),
    ({"stacks": {"0x5000": [{"ip": 12}]}}, "stacks[0x5000][0].ip"),
    ({"bugcheck": {"code": "0x9f", "args": ["0x1"]}}, "bugcheck.args"),
    ({"modules": [{"name": "nt", "base": "0x0"}]}, "modules[0].size"),
])
def test_malformed_parts_are_named(tmp_path, over, where):
    assert where in load_error(tmp_path, doc(**over))


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(TargetFileError) as e:
        MockTarget.load(str(tmp_path / "nope.json.gz"))
    assert "cannot read" in str(e.value)
