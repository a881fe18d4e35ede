"""Push-lock waits and inferred owners for the wait-for graph.

A push-lock waiter blocks (wait reason WrPushLock) on the gate inside an EX_PUSH_LOCK_WAIT_BLOCK
on its own stack; the lock word points at the newest waiter's block, and the blocks link to
the oldest (kernel/pushlocks.py; ReactOS ntoskrnl/ex/pushlock.c).  The lock's address is the
acquire routine's first argument: it is looked for in the acquire frames and the caller's
home slots, and accepted only if the word there is a Waiting push lock whose wait-block chain
holds the thread's own block — the kernel's record confirms the guess.  Evidence
`wait-block-chain`.

No owner is recorded.  Owners are inferred, never stated as recorded:
  lock-entry   the thread's AutoBoost lock entry names the lock as acquired (8.1, 10);
  stack-scan   the lock's address lies on the stack of a thread that does not wait for it
               (ranked by how often; only the first is put in the graph, the rest listed).
"""
import struct

from ..errors import MemoryFault, TypeNotFound
from ..kernel.pushlocks import PUSH_LOCK_ACQUIRERS, lock_entries, read_word, wait_chain

ACQUIRERS = {n.lower() for n in PUSH_LOCK_ACQUIRERS}
MAX_FRAME_SCAN = 0x4000          # bytes of acquire frames searched for the lock's address
MAX_OWNER_SCAN_THREADS = 4096    # threads whose stacks are searched for an inferred owner
MAX_OWNER_SCAN_BYTES = 0x6000    # bytes of each such stack (a whole x64 kernel stack)
MAX_CANDIDATES = 3


def _kernel_pointer(w):
    return not w & 7 and w >> 47 == 0x1ffff


class PushLocks(object):
    """Finds push-lock waits thread by thread, then settles waiters and inferred owners."""

    def __init__(self, target, diags):
        self.target, self.diags = target, diags
        self.found = {}          # lock -> (PushLockWord, [(wait block, exclusive, share count)], complete)
        self.by_block = {}       # wait block -> lock

    def waiter(self, thread, facts, objs):
        """(lock, mode, wait block) when `thread` waits on a push lock, else None."""
        own = [o.object for o in objs if thread.on_stack(o.object)]
        if not own:
            return None
        wb = own[0]
        lock = self.by_block.get(wb)
        if lock is None:
            lock = self._scan(thread, facts, wb)
            if lock is None:
                return None
        for block, exclusive, _ in self.found[lock][1]:
            if block == wb:
                return lock, "exclusive" if exclusive else "shared", wb
        return None

    def _scan(self, thread, facts, wb):
        frames = facts.frames or []
        idx = [i for i, fr in enumerate(frames) if (fr.function or "").lower() in ACQUIRERS]
        if not idx:
            return None
        lo = frames[idx[0]].sp
        caller = frames[idx[-1] + 1] if idx[-1] + 1 < len(frames) else None
        hi = (caller.sp if caller is not None else frames[idx[-1]].sp) + 0x40
        if not lo or hi <= lo or hi - lo > MAX_FRAME_SCAN:
            return None
        try:
            raw = self.target.read(lo, hi - lo)
        except MemoryFault as e:
            self.diags.add("unreadable", "thread 0x%x: stack at 0x%x is unreadable" % (thread.address, e.address),
                           e.address)
            return None
        for (w,) in struct.iter_unpack("<Q", raw[:len(raw) // 8 * 8]):
            if not _kernel_pointer(w) or w in self.found:
                continue
            try:
                word = read_word(self.target, w)
            except MemoryFault:
                continue                     # not a lock: a stale or unrelated word
            if not word.waiting or not _kernel_pointer(word.newest):
                continue
            try:
                chain, complete = wait_chain(self.target, word, self.diags, "push lock 0x%x" % w)
            except TypeNotFound as e:
                self.diags.add("missing-type", "push locks not followed: %s" % e)
                return None
            if any(b == wb for b, _, _ in chain):
                self.found[w] = (word, chain, complete)
                for b, _, _ in chain:
                    self.by_block[b] = w
                return w
        return None

    def settle(self, a, threads, stacks, lock, Edge):
        """Edges for every waiter in each lock's chain, the lock word, and inferred owners."""
        if not self.found:
            return
        tindex = {t.address: t for t in threads}
        waiting_for = {}
        for lk_addr, (word, chain, complete) in self.found.items():
            lk = lock(lk_addr, "push lock", "_EX_PUSH_LOCK")
            lk.word = word.describe()
            edged = {e.thread for e in a.edges if e.lock == lk_addr}
            for wb, exclusive, _ in chain:
                th = stacks.owner(wb)
                if th is None:
                    self.diags.add("inconsistent", "push lock 0x%x: wait block 0x%x is on no listed thread's "
                                   "stack" % (lk_addr, wb), wb)
                    continue
                if th not in edged:
                    a.edges.append(Edge(th, lk_addr, None, "exclusive" if exclusive else "shared",
                                        "wait-block-chain"))
                    edged.add(th)
            waiting_for[lk_addr] = edged
        self._owners_from_lock_entries(a, threads, waiting_for, tindex)
        self._owners_from_stacks(a, threads, waiting_for)

    def _owners_from_lock_entries(self, a, threads, waiting_for, tindex):
        for t in threads:
            for e in lock_entries(self.target, t, self.diags):
                if e.lock in self.found and e.acquired:
                    lk = a.locks[e.lock]
                    if t.address not in [o for o, _ in lk.owners]:
                        lk.owners.append((t.address, "held"))
                        lk.owner_evidence[t.address] = "lock-entry"

    def _owners_from_stacks(self, a, threads, waiting_for):
        pending = {lk for lk in self.found if not a.locks[lk].owners}
        if not pending:
            return
        hits = {lk: {} for lk in pending}
        scanned = 0
        for t in threads:
            if scanned >= MAX_OWNER_SCAN_THREADS:
                self.diags.add("cap", "push-lock owners: only the stacks of %d threads were searched"
                               % MAX_OWNER_SCAN_THREADS)
                break
            if not t.stack_base or not t.kernel_stack:
                continue
            lo = max(t.kernel_stack, t.stack_base - MAX_OWNER_SCAN_BYTES, t.stack_limit)
            if lo >= t.stack_base:
                continue
            scanned += 1
            try:
                raw = self.target.read(lo, t.stack_base - lo)
            except MemoryFault:
                continue                     # a stack paged out or not in the dump
            for (w,) in struct.iter_unpack("<Q", raw[:len(raw) // 8 * 8]):
                if w in hits and t.address not in waiting_for[w]:
                    hits[w][t.address] = hits[w].get(t.address, 0) + 1
        for lk_addr, counts in hits.items():
            ranked = sorted(counts, key=lambda th: (-counts[th], th))[:MAX_CANDIDATES]
            lk = a.locks[lk_addr]
            lk.candidates = ranked
            if ranked:
                lk.owners.append((ranked[0], "held"))
                lk.owner_evidence[ranked[0]] = "stack-scan"
            else:
                lk.note = ("a push lock (%s): the kernel records no owner, and no thread's AutoBoost "
                           "lock entries or stack name one" % lk.word)
