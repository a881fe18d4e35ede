"""Driver Verifier's deadlock detection data (what `!deadlock` reads), where the target has it.

With Verifier's deadlock detection on, the kernel keeps a lock-order database and, when an
acquisition closes a cycle, records the participants before bug check 0xC4 (parameter 1
0x1001, VI_DEADLOCK_ISSUE_DEADLOCK_DETECTED): `nt!ViDeadlockGlobals` points at a
_VI_DEADLOCK_GLOBALS whose `NumberOfParticipants` nodes in `Participant[]` are the
acquisitions that form the inversion and `Instigator` the resource whose acquisition closed it.
Each _VI_DEADLOCK_NODE names its resource (`Root` -> _VI_DEADLOCK_RESOURCE: `Type`,
`ResourceAddress`), its thread (`ThreadEntry` -> _VI_DEADLOCK_THREAD: `Thread`), and the
acquiring stack (`StackTrace[8]`) -- WRK base/ntos/verifier/vfdeadlock.h / vfdeadlock.c
(VI_DEADLOCK_NODE, VI_DEADLOCK_RESOURCE, VI_DEADLOCK_THREAD, ViDeadlockAddParticipant).

The types are read from the target's own symbols; none is guessed: where the symbols do not
type them (the shipped trimmed layouts do not carry them) the data is said to be unavailable.
"""
from ..errors import FieldNotFound, MemoryFault, SymbolNotFound, TypeNotFound
from ..kernel.views import Struct

MAX_PARTICIPANTS = 32          # NO_OF_DEADLOCK_PARTICIPANTS (WRK vfdeadlock.h)
STACK_DEPTH = 8                # VI_MAX_STACK_DEPTH


class Participant(object):
    __slots__ = ("node", "thread", "lock", "lock_type", "stack", "symbols")

    def __init__(self, node):
        self.node = node
        self.thread = self.lock = 0
        self.lock_type = None
        self.stack = []
        self.symbols = []


class VerifierDeadlock(object):
    """available: the target's symbols type the database; participants: [Participant];
    instigator: the resource address whose acquisition closed the cycle; reason: why not read."""

    def __init__(self):
        self.available = False
        self.reason = None
        self.instigator = 0
        self.participants = []


def read(target, diags):
    out = VerifierDeadlock()
    lays = target.layouts()
    try:
        globals_ptr = target.symbol("nt!ViDeadlockGlobals")
    except SymbolNotFound:
        out.reason = "nt!ViDeadlockGlobals is not a symbol of this target"
        return out
    for t in ("_VI_DEADLOCK_GLOBALS", "_VI_DEADLOCK_NODE", "_VI_DEADLOCK_RESOURCE", "_VI_DEADLOCK_THREAD"):
        if not lays.has_type(t):
            out.reason = "the target's symbols do not type %s" % t
            return out
    try:
        g_addr = int.from_bytes(target.read(globals_ptr, target.pointer_size), "little")
        if not g_addr:
            out.available = True
            out.reason = "deadlock detection is off (nt!ViDeadlockGlobals is NULL)"
            return out
        g = Struct(target, "_VI_DEADLOCK_GLOBALS", g_addr)
        out.available = True
        n = min(g["NumberOfParticipants"], MAX_PARTICIPANTS)
        out.instigator = g["Instigator"]
        field = lays.layout("_VI_DEADLOCK_GLOBALS").field("Participant")
        types = lays.enum_names("_VI_DEADLOCK_RESOURCE_TYPE")
        nlay = lays.layout("_VI_DEADLOCK_NODE")
        for i in range(n):
            node = int.from_bytes(target.read(g_addr + field.offset + i * target.pointer_size,
                                              target.pointer_size), "little")
            p = Participant(node)
            try:
                v = Struct(target, nlay, node)
                root, thread_entry = v["Root"], v["ThreadEntry"]
                if root:
                    r = Struct(target, "_VI_DEADLOCK_RESOURCE", root)
                    p.lock = r["ResourceAddress"]
                    t = r["Type"]
                    p.lock_type = types.get(t, "type %d" % t)
                if thread_entry:
                    p.thread = Struct(target, "_VI_DEADLOCK_THREAD", thread_entry)["Thread"]
                st = nlay.field("StackTrace")
                raw = target.read(node + st.offset, STACK_DEPTH * target.pointer_size)
                p.stack = [int.from_bytes(raw[j:j + 8], "little") for j in range(0, len(raw), 8)]
                p.stack = [a for a in p.stack if a]
                p.symbols = [target.describe(a) for a in p.stack]
            except MemoryFault as e:
                diags.add("unreadable", "Verifier deadlock participant %d (node 0x%x) is unreadable" % (i, node),
                          e.address)
            out.participants.append(p)
    except MemoryFault as e:
        diags.add("unreadable", "Verifier deadlock database at nt!ViDeadlockGlobals is unreadable", e.address)
    except (FieldNotFound, TypeNotFound) as e:
        out.reason = "the target's Verifier types lack what is read: %s" % e
        out.available = False
    return out
