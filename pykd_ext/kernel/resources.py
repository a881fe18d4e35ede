"""Executive resources (ERESOURCE): the system list, each one's owner entries and waiters.

What the fields mean (pykd_ext/SEMANTICS.md, "ERESOURCE"):
- nt!ExpSystemResourcesList links every initialised ERESOURCE through SystemResourcesList
  (WRK/ReactOS ExInitializeResourceLite).
- Flag & 0x80 (ResourceOwnedExclusive): OwnerEntry holds the exclusive owner.  Otherwise
  OwnerEntry and the OwnerTable entries 1.. (entry 0 carries TableSize) hold shared *entries*
  — and an entry is not proof of ownership: ExAcquireResourceSharedLite writes a shared
  acquirer that must wait into an entry BEFORE it blocks (WRK, ReactOS, decompiled Win10/11
  ExpAcquireResourceSharedLite), and with an exclusive owner a queued shared waiter sits in a
  table entry (ExpFindFreeEntry).  Which entries are waiters is decided by the wait-for
  analysis, which knows who waits for what; here they are only read.
- An OwnerThread with both low bits set is an ExSetResourceOwnerPointer(Ex) value; with
  FLAG_OWNER_POINTER_IS_THREAD, value & ~3 is the owning KTHREAD (`!locks` prints "Actual
  Thread") — Microsoft's ExSetResourceOwnerPointerEx page.
- Windows 7/8.1: waiters block on the KEVENT (ExclusiveWaiters) or KSEMAPHORE (SharedWaiters)
  the resource points at.  Windows 10 and later (where the layout types those fields as void*):
  they point at a circular list of _KWAIT_CHAIN_ENTRY {ListEntry, Thread, Event} records on the
  waiters' own stacks; each waiter blocks on the event of its record (decompiled Win10/11
  ExpAcquireResource*Lite / ExpWaitForResource; Geoff Chappell, eresource.htm).  Walking it
  names every waiter exactly; NumberOf*Waiters are still kept, and are checked against it.
- A fast resource (ExInitializeFastResource, newer Win10/11: Flag bit 0 set, +0x30 turned into
  an empty list head) records no owner in OwnerEntry; reading it as classic would report the
  list pointer as an owner.
"""
import struct

from ..errors import MemoryFault, TypeNotFound
from ..progress import report
from .lists import walk_list
from .views import Struct

RESOURCE_OWNED_EXCLUSIVE = 0x80     # ERESOURCE.Flag
FAST_RESOURCE_FLAG = 0x01           # ERESOURCE.Flag bit 0: ExInitializeFastResource
MAX_OWNER_TABLE = 4096
MAX_CHAIN = 4096                    # waiters walked per chain


class Resource(object):
    """owners: [(owner value, mode)] as the owner entries say (candidates: the wait-for
    analysis removes those that wait for this resource); table_waiters: owner-table entries of
    an exclusively owned resource (only queued shared waiters sit there); chain: mode ->
    [(thread, wait chain entry)] from the Windows 10+ waiter lists, None where the build keeps
    dispatcher objects; fast: a fast resource (owners not recorded in OwnerEntry)."""
    __slots__ = ("address", "flag", "active_count", "exclusive", "owners", "shared_waiters",
                 "exclusive_waiters", "n_shared_waiters", "n_exclusive_waiters", "contention",
                 "table_waiters", "chain", "chain_complete", "fast", "entry_counts")

    def __init__(self, address):
        self.address = address
        self.owners = []      # [(owner value, "exclusive"|"shared")]
        self.table_waiters = []
        self.chain = None
        self.chain_complete = True
        self.fast = False
        self.entry_counts = {}

    def __repr__(self):
        return "Resource(0x%x)" % self.address


def decode_resource(target, address, diags):
    r = Resource(address)
    lay = target.layouts().layout("_ERESOURCE")
    v = Struct(target, lay, address)
    r.flag = v["Flag"]
    r.active_count = v["ActiveCount"]
    r.exclusive = bool(r.flag & RESOURCE_OWNED_EXCLUSIVE)
    r.shared_waiters = v["SharedWaiters"]
    r.exclusive_waiters = v["ExclusiveWaiters"]
    r.n_shared_waiters = v["NumberOfSharedWaiters"]
    r.n_exclusive_waiters = v["NumberOfExclusiveWaiters"]
    r.contention = v["ContentionCount"]
    owner_entry = address + lay.offset("OwnerEntry")
    first = v.sub("OwnerEntry")["OwnerThread"]
    if r.flag & FAST_RESOURCE_FLAG or (first == owner_entry and not r.exclusive):
        r.fast = True                 # +0x30 is a list head, not an owner entry
        return r
    _read_chains(target, r, lay, diags)
    if r.active_count == 0 and not r.n_shared_waiters and not _chain_has(r, "shared"):
        return r
    mode = "exclusive" if r.exclusive else "shared"
    if first:
        r.owners.append((first, mode))
        r.entry_counts[first] = v.sub("OwnerEntry").get("OwnerCount")
    table = v["OwnerTable"]
    if table:
        olay = target.layouts().layout("_OWNER_ENTRY")
        try:
            size = Struct(target, olay, table)["TableSize"]
            if size > MAX_OWNER_TABLE:
                diags.add("inconsistent", "ERESOURCE 0x%x: owner table size %d is implausible; reading %d"
                          % (address, size, MAX_OWNER_TABLE), table)
                size = MAX_OWNER_TABLE
            if size > 1:
                raw = target.read(table, olay.size * size)
                ptr = olay.offset("OwnerThread")
                for i in range(1, size):
                    (t,) = struct.unpack_from("<Q", raw, i * olay.size + ptr)
                    if not t:
                        continue
                    if r.exclusive:
                        if t not in r.table_waiters:
                            r.table_waiters.append(t)
                    elif (t, "shared") not in r.owners:
                        r.owners.append((t, "shared"))
        except MemoryFault as e:
            diags.add("unreadable", "ERESOURCE 0x%x: owner table at 0x%x is unreadable" % (address, table),
                      e.address)
    return r


def _chain_has(r, mode):
    return bool(r.chain and r.chain.get(mode))


def _read_chains(target, r, lay, diags):
    """The Windows 10+ waiter lists, where the layout leaves the waiter fields untyped."""
    if lay.field("SharedWaiters").type != "ptr:void" or lay.field("ExclusiveWaiters").type != "ptr:void":
        return                        # KSEMAPHORE / KEVENT pointers: dispatcher objects
    try:
        clay = target.layouts().layout("_KWAIT_CHAIN_ENTRY")
    except TypeNotFound as e:
        diags.add("missing-type", "ERESOURCE waiter chains not read: %s" % e)
        return
    link_name = next((n for n in ("ListEntry", "Links") if clay.has(n)), None)
    if link_name is None or clay.field(link_name).type != "_LIST_ENTRY" or not clay.has("Event"):
        # public symbol dumps show other shapes (a SINGLE_LIST_ENTRY link on some builds): not
        # a ring this walk understands; the threads' wait blocks and the stack scan remain
        diags.add("missing-type", "ERESOURCE waiter chains not read: _KWAIT_CHAIN_ENTRY has no "
                  "LIST_ENTRY link and Event in this build's symbols")
        return
    r.chain = {}
    for mode, head, count in (("exclusive", r.exclusive_waiters, r.n_exclusive_waiters),
                              ("shared", r.shared_waiters, r.n_shared_waiters)):
        found = r.chain[mode] = []
        if not head:
            if count:
                r.chain_complete = False
                diags.add("inconsistent", "ERESOURCE 0x%x: %d %s waiter(s) counted but no waiter chain"
                          % (r.address, count, mode), r.address)
            continue
        what = "ERESOURCE 0x%x %s waiter chain" % (r.address, mode)
        links = clay.offset(link_name)
        # a ring with no separate head: the record the field points at is its first member
        w = walk_list(target, head, links, what, MAX_CHAIN)
        entries = [head - links] + list(w.items)
        for e in entries:
            try:
                # the record's Thread (where the build's record has one; else the waiter is
                # known by the event its wait block names)
                t = Struct(target, clay, e).get("Thread")
            except MemoryFault as fault:
                diags.add("unreadable", "%s: entry at 0x%x is unreadable" % (what, e), fault.address)
                r.chain_complete = False
                continue
            found.append((t, e))
        if not w.complete:
            r.chain_complete = False
            diags.extend(w.diagnostics)
        if len(found) != count:
            diags.add("inconsistent", "ERESOURCE 0x%x: the %s waiter chain lists %d waiter(s), "
                      "NumberOf%sWaiters says %d" % (r.address, mode, len(found), mode.capitalize(), count),
                      r.address)


def all_resources(target, diags, cap=1000000):
    """Every ERESOURCE on nt!ExpSystemResourcesList, decoded; warnings go to diags."""
    head = target.symbol("nt!ExpSystemResourcesList")
    off = target.layouts().layout("_ERESOURCE").offset("SystemResourcesList")
    w = walk_list(target, head, off, "resource list (nt!ExpSystemResourcesList)", cap)
    diags.extend(w.diagnostics)
    out = []
    for i, a in enumerate(w.items):
        if not i & 0x3ff:
            report(target, "ERESOURCEs decoded", i)
        try:
            out.append(decode_resource(target, a, diags))
        except MemoryFault as e:
            diags.add("unreadable", "ERESOURCE 0x%x is unreadable (0x%x)" % (a, e.address), e.address)
    return out, w.complete
