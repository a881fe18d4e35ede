"""Guarded walks of doubly linked LIST_ENTRY lists.

Every walk detects loops (a seen set: a list that returns to a node other than its head),
checks that each node's Blink points back at the node it came from, stops at NULL or
unreadable links, caps its count, and reports a cut-short walk in `Walk.complete` and
`Walk.diagnostics` instead of hanging or silently stopping.  On a live target lists change
under us: a Blink mismatch is reported but the walk goes on while Flink stays readable.
"""
import struct

from ..errors import MemoryFault
from ..progress import report
from .diag import Diagnostics

DEFAULT_CAP = 200000
# Blink mismatches reported one by one per walk; the rest are counted in one warning (a list
# rewritten under us, or a corrupt one, would otherwise give a warning per entry, and
# merging warnings compares each with those already held).
MAX_MISMATCHES_SHOWN = 8


class Walk(object):
    """The entries found (addresses of the containing records) and how the walk ended."""

    def __init__(self, what):
        self.what = what
        self.items = []
        self.complete = True
        self.diagnostics = Diagnostics()

    def cut(self, kind, message, address=None):
        self.complete = False
        self.diagnostics.add(kind, "%s: %s" % (self.what, message), address)

    def __iter__(self):
        return iter(self.items)

    def __len__(self):
        return len(self.items)


def walk_list(target, head, link_offset, what, cap=DEFAULT_CAP, check_blink=True):
    """Walk the list whose LIST_ENTRY head is at `head`; entries are records whose
    LIST_ENTRY sits at `link_offset` inside them.  Returns a Walk of record addresses."""
    w = Walk(what)
    ps = target.pointer_size
    fmt = "<QQ" if ps == 8 else "<II"
    try:
        flink, blink = struct.unpack(fmt, target.read(head, 2 * ps))
    except MemoryFault as e:
        w.cut("unreadable", "list head at 0x%x is unreadable (0x%x)" % (head, e.address), e.address)
        return w
    seen = {head}
    prev = head
    node = flink
    mismatches = 0
    while node != head:
        if node == 0:
            w.cut("null-link", "NULL Flink in entry at 0x%x after %d entries" % (prev, len(w.items)), prev)
            break
        if node in seen:
            w.cut("loop", "list loops back to 0x%x after %d entries (Flink of 0x%x)"
                  % (node, len(w.items), prev), node)
            break
        if len(w.items) >= cap:
            w.cut("cap", "stopped after %d entries (cap)" % cap, node)
            break
        try:
            nflink, nblink = struct.unpack(fmt, target.read(node, 2 * ps))
        except MemoryFault as e:
            w.cut("unreadable", "entry at 0x%x (Flink of 0x%x) is unreadable" % (node, prev), e.address)
            break
        if check_blink and nblink != prev:
            w.complete = False
            mismatches += 1
            if mismatches <= MAX_MISMATCHES_SHOWN:
                w.diagnostics.add("blink-mismatch", "%s: entry 0x%x has Blink 0x%x, expected 0x%x"
                                  % (what, node, nblink, prev), node)
        seen.add(node)
        w.items.append(node - link_offset)
        if not len(w.items) & 0x3ff:
            report(target, what, len(w.items))
        prev, node = node, nflink
    if mismatches > MAX_MISMATCHES_SHOWN:
        w.diagnostics.add("blink-mismatch", "%s: %d more entries have a Blink that does not point back"
                          % (what, mismatches - MAX_MISMATCHES_SHOWN))
    return w


def walk_single_list(target, first, link_offset, what, cap=DEFAULT_CAP):
    """Walk a singly linked (SINGLE_LIST_ENTRY) list from its first link `first`; entries are
    records whose link sits at `link_offset`.  An entry whose link cannot be read is kept (the
    caller decodes it as unreadable) and ends the walk, which is then marked cut short."""
    w = Walk(what)
    seen, node = set(), first
    while node:
        if node in seen:
            w.cut("loop", "list loops back to 0x%x after %d entries" % (node, len(w.items)), node)
            break
        if len(w.items) >= cap:
            w.cut("cap", "stopped after %d entries (cap)" % cap, node)
            break
        seen.add(node)
        w.items.append(node - link_offset)
        try:
            node = struct.unpack("<Q", target.read(node, 8))[0]
        except MemoryFault as e:
            w.cut("unreadable", "the link of entry 0x%x is unreadable; the entries after it are not "
                  "reachable this way" % (node - link_offset), e.address)
            break
    return w


def walk_list_back(target, head, link_offset, known, cap=DEFAULT_CAP):
    """Records of a doubly linked list reached backwards through Blink from `head`, up to the
    first one in `known` (what a forward walk found before it broke), in list order; at most
    `cap` records, one read each (a set, not the list, remembers them: linear however long)."""
    out, seen, node = [], set(), head
    for _ in range(cap):
        try:
            node = struct.unpack("<Q", target.read(node + 8, 8))[0]
        except MemoryFault:
            break
        rec = node - link_offset
        if node == head or not node or rec in known or rec in seen:
            break
        seen.add(rec)
        out.append(rec)
    return list(reversed(out))


def merge_capped(diags, new, source, cap):
    """Add the warnings `new` to `diags`, at most `cap` of them from `source` over all calls
    with the same `diags` (one analysis), then one line counting the rest.  Merging compares
    each warning with those held, so thousands of them (a process list of copies, each thread
    with a broken IRP list) made it quadratic: powerirps took 16 s on such a target."""
    state = getattr(diags, "__dict__", None)
    if state is None:                           # a plain list: nothing to keep the count in
        diags.extend(d for d in new if d not in diags)
        return
    counts = state.setdefault("_merged", {})
    n = counts.get(source, 0)
    for d in new:
        if n < cap:
            if d not in diags:
                diags.append(d)
                n += 1
        else:
            n += 1
    counts[source] = n
    if n > cap:
        more = state.setdefault("_merged_more", {})
        line = more.get(source)
        text = "%d more warnings from %s not listed (the first %d are)" % (n - cap, source, cap)
        if line is None:
            more[source] = diags.add("cap", text)
        else:
            line.message = text
