"""The page cache (whole pages, fault fallback, counters) and typed Struct views."""
import pytest

from pykd_ext.errors import FieldNotFound, MemoryFault
from pykd_ext.kernel.views import Struct
from pykd_ext.mock.builder import ScenarioBuilder
from pykd_ext.target.cache import CachedTarget
from pykd_ext.target.layouts import load_shipped
from pykd_ext.target.mock import MockTarget

from conftest import BUILDS, WIN7, WIN10, WIN81, cached


def small_target(memory):
    return MockTarget({"format": "pykd_ext-mock-target", "version": 1, "build": WIN10,
                       "memory": memory})


def test_reads_in_one_page_cost_one_backend_call():
    b = ScenarioBuilder(WIN10)
    t = cached(b)
    head = t.symbol("nt!PsActiveProcessHead")
    t.read(head, 8)
    t.read(head + 8, 8)
    t.read(head, 16)
    assert t.stats.backend_calls == 1
    assert len(t.stats.pages) == 1 and t.stats.bytes == 0x1000


def test_read_spanning_pages_joins_them():
    b = ScenarioBuilder(WIN10)
    b.mem.write(0xfffffa8000000ff8, bytes(range(16)))
    t = cached(b)
    assert t.read(0xfffffa8000000ff8, 16) == bytes(range(16))
    assert t.stats.backend_calls == 1             # both pages in one call
    assert len(t.stats.pages) == 2 and t.stats.pages_read == 2


def test_fault_in_page_falls_back_to_the_bytes_asked_for():
    # a range that ends mid-page: the whole-page read faults, the exact read succeeds
    t = CachedTarget(small_target([{"address": "0x10000", "data": "AQIDBAUGBwg="}]))
    assert t.read(0x10002, 4) == b"\x03\x04\x05\x06"
    assert t.stats.faults == 1 and t.stats.backend_calls == 2
    with pytest.raises(MemoryFault) as e:
        t.read(0x10006, 4)
    assert e.value.address == 0x10008


def test_struct_decodes_signed_pointer_bitfield_and_embedded():
    b = ScenarioBuilder(WIN10)
    a = b.alloc(b.size("_ERESOURCE"))
    b.put("_ERESOURCE", a, ActiveCount=-2 & 0xffff, OwnerTable=0xfffffa8012345670,
          OwnerEntry__OwnerThread=0xfffffa8000001000, OwnerEntry__OwnerCount=5, OwnerEntry__TableSize=0)
    b.put("_ERESOURCE", a, OwnerEntry__OwnerCount=5)
    t = cached(b)
    r = Struct(t, "_ERESOURCE", a)
    assert r["ActiveCount"] == -2                      # short, signed
    assert r["OwnerTable"] == 0xfffffa8012345670       # pointer
    assert r["OwnerEntry"] == a + 0x30                 # embedded struct -> its address
    oe = r.sub("OwnerEntry")
    assert oe["OwnerThread"] == 0xfffffa8000001000
    assert oe["OwnerCount"] == 5                       # bit field 3:29 on 19041
    assert t.stats.backend_calls == 1


def test_struct_reads_fields_one_by_one_when_the_whole_is_unreadable():
    t = CachedTarget(small_target([{"address": "0x10000", "data": "AQAAAAAAAAA="}]))
    e = Struct(t, "_LIST_ENTRY", 0x10000)
    assert e["Flink"] == 1                              # the readable half
    with pytest.raises(MemoryFault) as f:
        e["Blink"]
    assert f.value.address == 0x10008


def test_missing_field_names_type_and_field():
    t = cached(ScenarioBuilder(WIN10))
    with pytest.raises(FieldNotFound) as e:
        Struct(t, "_KWAIT_BLOCK", 0)["NextWaitBlock"]
    assert str(e.value) == "_KWAIT_BLOCK has no field NextWaitBlock"


@pytest.mark.parametrize("build", BUILDS)
def test_fields_that_differ_between_builds_are_probed(build):
    L = load_shipped(build)
    win7 = build == WIN7
    assert L.layout("_KWAIT_BLOCK").has("NextWaitBlock") == win7
    assert L.layout("_KDPC_DATA").has("DpcListHead") == win7
    assert L.layout("_KDPC_DATA").has("DpcList") == (not win7)
    assert L.layout("_KTHREAD").has("WaitBlockCount") == (not win7)
    # 8.1 and later have no _KGUARDED_MUTEX: it is the FAST_MUTEX layout (alias, not a fake type)
    assert L.layout("_KGUARDED_MUTEX").has("Gate") == win7
    assert L.layout("_ERESOURCE").size == 0x68
    assert L.layout("_ERESOURCE").offset("OwnerEntry") == 0x30


def test_eresource_waiter_fields_typed_only_before_windows_10():
    assert load_shipped(WIN81).layout("_ERESOURCE").field("ExclusiveWaiters").type == "ptr:_KEVENT"
    assert load_shipped(WIN10).layout("_ERESOURCE").field("ExclusiveWaiters").type == "ptr:void"


def test_layout_values_agree_with_the_seed_eprocess_offsets():
    e = load_shipped(WIN81).layout("_EPROCESS")     # seed 003's !list output on 8.1
    assert (e.offset("ImageFileName"), e.offset("RequestedTimerResolution"),
            e.offset("SmallestTimerResolution")) == (0x438, 0x638, 0x63c)
