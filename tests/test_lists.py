"""Guarded list walks over every kind of corruption: no hang, partial results, a warning."""
import pytest

from pykd_ext.kernel.lists import walk_list, walk_list_back, walk_single_list
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


# -- singly linked lists (the DPC queues of 8.1 and later) and the walk back through Blink ----------

def make_single(n=5):
    b = ScenarioBuilder(WIN10)
    recs = [b.alloc(0x40) for _ in range(n)]
    for a, nxt in zip(recs, recs[1:] + [None]):
        b.u64(a + 0x8, nxt + 0x8 if nxt else 0)      # SINGLE_LIST_ENTRY at +0x8
    return b, recs


@pytest.mark.parametrize("pos", [1, 2, 3])
def test_single_list_loop_to_position_n(pos):
    b, recs = make_single(5)
    b.u64(recs[-1] + 0x8, recs[pos - 1] + 0x8)
    w = walk_single_list(cached(b), recs[0] + 0x8, 0x8, "single")
    assert w.items == recs and not w.complete and [d.kind for d in w.diagnostics] == ["loop"]


def test_single_list_self_loop_null_and_unreadable():
    b, recs = make_single(3)
    w = walk_single_list(cached(b), recs[0] + 0x8, 0x8, "single")
    assert w.items == recs and w.complete                  # NULL Next ends a singly linked list
    b.u64(recs[1] + 0x8, recs[1] + 0x8)
    w = walk_single_list(cached(b), recs[0] + 0x8, 0x8, "single")
    assert w.items == recs[:2] and [d.kind for d in w.diagnostics] == ["loop"]
    b.u64(recs[1] + 0x8, UNMAPPED)
    w = walk_single_list(cached(b), recs[0] + 0x8, 0x8, "single")
    assert w.items == recs[:2] + [UNMAPPED - 0x8] and [d.kind for d in w.diagnostics] == ["unreadable"]


def test_single_list_cap():
    b, recs = make_single(5)
    w = walk_single_list(cached(b), recs[0] + 0x8, 0x8, "single", cap=3)
    assert w.items == recs[:3] and [d.kind for d in w.diagnostics] == ["cap"]


def test_walk_back_through_blink_recovers_the_tail():
    b, head, entries = make_list(5)
    b.u64(entries[1] + 0x10, UNMAPPED)                   # second Flink broken
    t = cached(b)
    w = walk(b, head)
    assert w.items == entries[:2] and not w.complete
    assert walk_list_back(t, head, 0x10, set(w.items)) == entries[2:]


def test_blink_mismatches_are_listed_up_to_eight_then_counted():
    """Issue 18: a warning per entry made merging warnings quadratic on a corrupt list."""
    b, head, entries = make_list(40)
    for rec in entries:
        b.u64(rec + 0x18, UNMAPPED)                    # every Blink wrong
    w = walk(b, head)
    assert w.items == entries and not w.complete
    assert len(w.diagnostics) == 9
    assert w.diagnostics[-1].message == "test list: 32 more entries have a Blink that does not point back"


def test_the_backward_walk_is_capped_and_remembers_records_in_a_set():
    b, head, entries = make_list(300)
    assert walk_list_back(cached(b), head, 0x10, set(), cap=50) == entries[-50:]
    b.u64(entries[100] + 0x18, entries[250] + 0x10)    # a Blink loop far from the head
    assert walk_list_back(cached(b), head, 0x10, set()) == entries[100:]     # 100 leads back to 250: stop


def test_merge_capped_keeps_the_first_warnings_of_a_source_and_counts_the_rest():
    from pykd_ext.kernel.diag import Diagnostics
    from pykd_ext.kernel.lists import merge_capped
    diags = Diagnostics()
    for i in range(10):
        new = Diagnostics()
        new.add("loop", "walk %d loops" % i)
        merge_capped(diags, new, "test walks", 4)
    assert [d.message for d in diags] == ["walk 0 loops", "walk 1 loops", "walk 2 loops", "walk 3 loops",
                                          "6 more warnings from test walks not listed (the first 4 are)"]
