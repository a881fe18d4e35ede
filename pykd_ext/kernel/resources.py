"""Executive resources (ERESOURCE): the system list and each one's owners.

nt!ExpSystemResourcesList links every initialised ERESOURCE through SystemResourcesList.
Owners: OwnerEntry holds the exclusive owner or one shared owner; OwnerTable (an array whose
entry 0 carries TableSize) holds further shared owners.  An OwnerThread value with both low
bits set is an owner pointer from ExSetResourceOwnerPointer, not a thread.
"""
import struct

from ..errors import MemoryFault
from ..progress import report
from .lists import walk_list
from .views import Struct

RESOURCE_OWNED_EXCLUSIVE = 0x80     # ERESOURCE.Flag
MAX_OWNER_TABLE = 4096


class Resource(object):
    __slots__ = ("address", "flag", "active_count", "exclusive", "owners", "shared_waiters",
                 "exclusive_waiters", "n_shared_waiters", "n_exclusive_waiters", "contention")

    def __init__(self, address):
        self.address = address
        self.owners = []      # [(owner value, "exclusive"|"shared")]

    def __repr__(self):
        return "Resource(0x%x)" % self.address


def decode_resource(target, address, diags):
    r = Resource(address)
    v = Struct(target, "_ERESOURCE", address)
    r.flag = v["Flag"]
    r.active_count = v["ActiveCount"]
    r.exclusive = bool(r.flag & RESOURCE_OWNED_EXCLUSIVE)
    r.shared_waiters = v["SharedWaiters"]
    r.exclusive_waiters = v["ExclusiveWaiters"]
    r.n_shared_waiters = v["NumberOfSharedWaiters"]
    r.n_exclusive_waiters = v["NumberOfExclusiveWaiters"]
    r.contention = v["ContentionCount"]
    if r.active_count == 0:
        return r
    mode = "exclusive" if r.exclusive else "shared"
    owner = v.sub("OwnerEntry")["OwnerThread"]
    if owner:
        r.owners.append((owner, mode))
    table = v["OwnerTable"]
    if table and not r.exclusive:
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
                    if t and (t, "shared") not in r.owners:
                        r.owners.append((t, "shared"))
        except MemoryFault as e:
            diags.add("unreadable", "ERESOURCE 0x%x: owner table at 0x%x is unreadable" % (address, table),
                      e.address)
    return r


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
