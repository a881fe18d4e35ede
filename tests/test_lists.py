"""Guarded list walks over every kind of corruption: no hang, partial results, a warning."""
import pytest

from pykd_ext.kernel.lists import walk_list
from pykd_ext.mock.builder import ScenarioBuilder

from conftest import WIN10, cached

UNMAPPED = 0xfffffa80dead0000


def make_list(n=5):
    b = ScenarioBuilder(WIN10)
    head = b.alloc(16)
    b.list_init(head)
    entries = []
    for _ in range(n):
        rec = b.alloc(0x40)
        b.list_insert_tail(head, rec + 0x10)      # LIST_ENTRY at +0x10 in each record
        entries.append(rec)
    return b, head, entries


def walk(b, head, **kw):
    return walk_list(cached(b), head, 0x10, "test list", **kw)


def test_intact_list_gives_records_in_order():
    b, head, entries = make_list(5)
    w = walk(b, head)
    assert w.items == entries and w.complete and not w.diagnostics


@pytest.mark.parametrize("pos", [1, 2, 3])
def test_loop_back_to_position_n_is_cut_and_warned(pos):
    b, head, entries = make_list(5)
    b.u64(entries[-1] + 0x10, entries[pos - 1] + 0x10)   # last Flink -> entry at position pos
    w = walk(b, head)
    assert w.items == entries and not w.complete
    assert [d.kind for d in w.diagnostics] == ["loop"]
    assert w.diagnostics[0].address == entries[pos - 1] + 0x10


def test_self_loop_stops_at_once():
    b, head, entries = make_list(3)
    b.u64(entries[1] + 0x10, entries[1] + 0x10)
    w = walk(b, head)
    assert w.items == entries[:2]
    assert "loop" in [d.kind for d in w.diagnostics]


def test_null_flink_keeps_what_was_found():
    b, head, entries = make_list(4)
    b.u64(entries[1] + 0x10, 0)
    w = walk(b, head)
    assert w.items == entries[:2] and not w.complete
    assert w.diagnostics[0].kind == "null-link"


def test_unreadable_flink_names_the_address():
    b, head, entries = make_list(4)
    b.u64(entries[2] + 0x10, UNMAPPED)
    w = walk(b, head)
    assert w.items == entries[:3]
    assert w.diagnostics[0].kind == "unreadable" and w.diagnostics[0].address == UNMAPPED


def test_blink_mismatch_is_reported_and_the_walk_goes_on():
    b, head, entries = make_list(4)
    b.u64(entries[2] + 0x18, 0x1234)
    w = walk(b, head)
    assert w.items == entries
    assert [d.kind for d in w.diagnostics] == ["blink-mismatch"]


def test_cap_marks_a_cut_short_walk():
    b, head, entries = make_list(6)
    w = walk(b, head, cap=4)
    assert w.items == entries[:4] and not w.complete
    assert w.diagnostics[0].kind == "cap"


def test_unreadable_head():
    b, _, _ = make_list(1)
    w = walk(b, UNMAPPED)
    assert w.items == [] and w.diagnostics[0].kind == "unreadable"
