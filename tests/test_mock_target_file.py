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


# -- validation at the door (issue 18) ---------------------------------------------------------------

def _inline_layouts():
    from pykd_ext.target.layouts import load_shipped
    return json.loads(json.dumps(load_shipped(WIN10).to_json()))


@pytest.mark.parametrize("change, where", [
    (lambda L: L["structs"]["_LIST_ENTRY"].__setitem__("fields", True), "layouts.structs._LIST_ENTRY.fields"),
    (lambda L: L["structs"]["_LIST_ENTRY"].__setitem__("fields", None), "layouts.structs._LIST_ENTRY.fields"),
    (lambda L: L["structs"]["_LIST_ENTRY"].__setitem__("fields", []), "layouts.structs._LIST_ENTRY.fields"),
    (lambda L: L["structs"]["_LIST_ENTRY"]["fields"]["Blink"].__setitem__("offset", 8.0),
     "layouts.structs._LIST_ENTRY.fields.Blink.offset"),
    (lambda L: L["structs"]["_LIST_ENTRY"]["fields"]["Blink"].__setitem__("offset", "8"),
     "layouts.structs._LIST_ENTRY.fields.Blink.offset"),
    (lambda L: L["structs"]["_LIST_ENTRY"]["fields"]["Blink"].__setitem__("offset", -8),
     "layouts.structs._LIST_ENTRY.fields.Blink.offset"),
    (lambda L: L["structs"]["_LIST_ENTRY"]["fields"]["Blink"].__setitem__("offset", 2 ** 70),
     "layouts.structs._LIST_ENTRY.fields.Blink.offset"),
    (lambda L: L["structs"]["_LIST_ENTRY"]["fields"]["Blink"].__setitem__("offset", 12),
     "layouts.structs._LIST_ENTRY.fields.Blink"),                       # past the structure's end
    (lambda L: L["structs"]["_LIST_ENTRY"]["fields"]["Blink"].pop("type"),
     "layouts.structs._LIST_ENTRY.fields.Blink"),
    (lambda L: L["structs"]["_LIST_ENTRY"]["fields"]["Blink"].update(bit_position=60, bit_length=8),
     "layouts.structs._LIST_ENTRY.fields.Blink"),                       # bits outside the field
    (lambda L: L["structs"]["_LIST_ENTRY"]["fields"]["Blink"].update(bit_length=True),
     "layouts.structs._LIST_ENTRY.fields.Blink.bit_length"),
    (lambda L: L["structs"]["_LIST_ENTRY"]["fields"]["Blink"].update(type=7),
     "layouts.structs._LIST_ENTRY.fields.Blink.type"),
    (lambda L: L["structs"]["_LIST_ENTRY"].__setitem__("size", 2 ** 40), "layouts.structs._LIST_ENTRY.size"),
    (lambda L: L.__setitem__("pointer_size", 0), "layouts.pointer_size"),
    (lambda L: L.__setitem__("pointer_size", -1), "layouts.pointer_size"),
    (lambda L: L.__setitem__("pointer_size", "8"), "layouts.pointer_size"),
    (lambda L: L.__setitem__("build", 10), "layouts.build"),
    (lambda L: L.__setitem__("build", ["x"]), "layouts.build"),
    (lambda L: L["base_types"]["int"].__setitem__("size", "4"), 'layouts.base_types.int.size'),
    (lambda L: L["enums"]["_KTHREAD_STATE"]["constants"].__setitem__("Ready", 1.5),
     "layouts.enums._KTHREAD_STATE.constants.Ready"),
    (lambda L: L.__setitem__("aliases", {"_KGUARDED_MUTEX": "_NOPE"}), "layouts.aliases._KGUARDED_MUTEX"),
])
def test_every_part_of_inline_layouts_is_checked(tmp_path, change, where):
    L = _inline_layouts()
    change(L)
    d = doc(layouts=L)
    del d["build"]
    msg = load_error(tmp_path, d)
    assert (": %s" % where) in msg, msg


@pytest.mark.parametrize("over, where", [
    ({"build": "supplement"}, "build"), ({"build": 3}, "build"), ({"build": ["x"]}, "build"),
    ({"build": "../layouts/supplement"}, "build"), ({"version": True}, "version"),
    ({"symbols": {"nt!Foo": "0x" + "f" * 17}}, "symbols"), ({"memory": [{"address": "0xffffffffffffffff", "data": "AAAA"}]}, "memory[0]"),
    ({"processors": [{"index": True, "prcb": "0x1"}]}, "processors[0].index"),
    ({"processors": [{"index": 0, "prcb": "0x1"}, {"index": 0, "prcb": "0x2"}]}, "processors[1].index"),
    ({"modules": [{"name": 5, "base": "0x0", "size": "0x1"}]}, "modules[0].name"),
    ({"describe": {"0x10": ["x"]}}, "describe"), ({"origin": 5}, "origin"),
])
def test_every_other_part_is_checked(tmp_path, over, where):
    msg = load_error(tmp_path, doc(**over))
    assert (": %s" % where) in msg, msg


def test_shipped_layout_sets_pass_the_checks():
    from pykd_ext.target.layouts import check_layouts, load_shipped, shipped_builds
    for b in shipped_builds():
        check_layouts(load_shipped(b).to_json())


def test_deep_nesting_is_refused_without_recursion(tmp_path):
    d = doc()
    deep = 0
    for _ in range(100):
        deep = [deep]
    d["comment"] = deep
    assert "nested deeper than 32" in load_error(tmp_path, d)
    p = tmp_path / "t.json.gz"
    p.write_bytes(gzip.compress(b"[" * 200000))
    with pytest.raises(TargetFileError) as e:
        MockTarget.load(str(p))
    assert "nested deeper" in str(e.value)


def test_only_regular_files_and_only_so_big(tmp_path, monkeypatch):
    import os
    from pykd_ext.target import mock as mock_mod
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    for path, what in (("/dev/zero", "a device"), (fifo, "a FIFO"), (str(tmp_path), "a directory")):
        with pytest.raises(TargetFileError) as e:
            MockTarget.load(path)
        assert str(e.value).startswith(path + ": cannot read: " + what)
    monkeypatch.setattr(mock_mod, "MAX_FILE_BYTES", 1000)
    p = tmp_path / "bomb.json.gz"
    p.write_bytes(gzip.compress(b" " * 5000))                   # small on disk, too big unpacked
    with pytest.raises(TargetFileError) as e:
        MockTarget.load(str(p))
    assert "once decompressed" in str(e.value)


def test_an_unusable_recording_is_named_by_the_file_given(tmp_path):
    from conftest import run_cli
    L = _inline_layouts()
    del L["structs"]["_IRP"]
    d = doc(layouts=L, origin="C:\\dumps\\MEMORY.DMP")
    del d["build"]
    path = write(tmp_path, d)
    code, out, err = run_cli("irp", "0x1000", "--target", path)
    assert code == 2 and err.count("\n") == 1
    assert ("unusable target %s (recorded from C:\\dumps\\MEMORY.DMP)" % path) in err
