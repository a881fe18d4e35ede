"""Processes, threads, their waits, and dispatcher objects."""
from .memory import STACK_SIZE, ThreadInfo


APC_LEVEL = 1          # wdm.h

class ThreadsMixin(object):
    # -- processes and threads ----------------------------------------------------------------

    def process(self, name, pid, listed=True):
        """An _EPROCESS; `listed=False` keeps it off PsActiveProcessHead, as the Idle process is."""
        a = self.alloc(self.size("_EPROCESS"))
        self.put("_EPROCESS", a, Pcb__Header__Type=self.enum("_KOBJECTS", "ProcessObject"),
                 UniqueProcessId=pid, ImageFileName=name.encode("latin-1")[:14])
        if listed:
            self.list_insert_tail(self.process_head, a + self.off("_EPROCESS", "ActiveProcessLinks"))
        else:
            self.list_init(a + self.off("_EPROCESS", "ActiveProcessLinks"))
        self.list_init(a + self.off("_EPROCESS", "ThreadListHead"))
        self.list_init(a + self.off("_EPROCESS", "Pcb.ThreadListHead"))
        return a

    def thread(self, process, tid, start, state="Waiting", wait_reason="Executive", waited_ticks=0,
               frames=(), pid=None, address=None):
        """A thread of `process` (an _EPROCESS address).  frames: innermost first, as
        `module!Func+0xoff` strings, or a bare `0x...` address that resolves to no module (an
        unloaded driver, raw code); the builder gives each a stack pointer on its stack.
        `address`: where the ETHREAD lies (a published session's thread address)."""
        if address is not None:
            a = address
            self.mem.map(a, self.size("_ETHREAD"))
        else:
            a = self.alloc(self.size("_ETHREAD"))
        limit = self._stack
        base = limit + STACK_SIZE
        self._stack += STACK_SIZE + 0x2000
        if pid is None:
            pid = int.from_bytes(self.mem.read(process + self.off("_EPROCESS", "UniqueProcessId"), 8), "little")
        sp = base - 0x1000 + 0x100 - 0x48 * len(frames)
        kernel_stack = sp - 0x40
        if self.compact_stacks:
            self.mem.map(kernel_stack, base - kernel_stack)
        else:
            self.mem.map(limit, STACK_SIZE)
        self.put("_ETHREAD", a,
                 Tcb__Header__Type=self.enum("_KOBJECTS", "ThreadObject"),
                 Tcb__State=self.enum("_KTHREAD_STATE", state),
                 Tcb__WaitReason=self.enum("_KWAIT_REASON", wait_reason),
                 Tcb__WaitTime=(self.tick - waited_ticks) & 0xffffffff,
                 Tcb__InitialStack=base - 0x1d0, Tcb__StackBase=base, Tcb__StackLimit=limit,
                 Tcb__KernelStack=kernel_stack, Tcb__Process=process,
                 Cid__UniqueProcess=pid, Cid__UniqueThread=tid,
                 StartAddress=self.code(start), Win32StartAddress=self.code(start))
        self.list_insert_tail(process + self.off("_EPROCESS", "ThreadListHead"),
                              a + self.off("_ETHREAD", "ThreadListEntry"))
        self.list_insert_tail(process + self.off("_EPROCESS", "Pcb.ThreadListHead"),
                              a + self.off("_KTHREAD", "ThreadListEntry"))
        self.list_init(a + self.off("_KTHREAD", "MutantListHead"))
        self.list_init(a + self.off("_ETHREAD", "IrpList"))
        info = ThreadInfo(a, process, limit, base, start)
        out = []
        for i, spec in enumerate(frames):
            ip = self.code(spec)
            fsp = sp + 0x48 * i
            info.frames.append((spec, fsp))
            out.append([ip, fsp])
        self.stacks[a] = [{"ip": "0x%x" % ip, "sp": "0x%x" % fsp,
                           "ret": "0x%x" % (out[i + 1][0] if i + 1 < len(out) else 0),
                           "fp": "0x0"} for i, (ip, fsp) in enumerate(out)]
        for i, (ip, fsp) in enumerate(out):          # return addresses where x64 pushes them
            if i + 1 < len(out):
                self.u64(out[i + 1][1] - 8, out[i + 1][0])
        self.threads[a] = info
        return a

    def thread_started_at(self, start):
        """The thread this builder made with start routine `start` (module!Func)."""
        return next(a for a, t in self.threads.items() if t.start == start)

    def first_frame(self, thread, functions):
        """The innermost frame of `thread` in one of `functions` (module!Func, any case), as
        (its name as the stack spells it, sp), or None."""
        wanted = {n.lower() for n in functions}
        for spec, sp in self.threads[thread].frames:
            name = spec.split("+")[0]
            if name.lower() in wanted:
                return name, sp
        return None

    def frame_sp(self, thread, function):
        """The stack pointer of the first frame of `thread` in `function` (module!Func)."""
        frame = self.first_frame(thread, (function,))
        if frame is None:
            raise KeyError("thread 0x%x has no frame in %s" % (thread, function))
        return frame[1]

    def stack_word(self, thread, function, offset, value):
        """Write a word into the frame of `function` on `thread`'s stack (a spilled register
        or argument home slot)."""
        self.u64(self.frame_sp(thread, function) + offset, value)

    def wait_on(self, thread, objects, wait_reason=None, wait_type="any", timeout=False, irql=0):
        """KeWaitForSingleObject / KeWaitForMultipleObjects (WRK base/ntos/ke/waitsup.c and
        wait.c; ReactOS ntoskrnl/ke/wait.c, include/internal/ke_x.h KxSingleThreadWait /
        KxMultiThreadWait): one wait block per object — Thread, Object, WaitKey = its index,
        WaitType (KeWaitForSingleObject writes WaitAny; KeWaitForMultipleObjects the caller's
        WaitAll/WaitAny), BlockState active where the build has it — each wait block queued at
        the tail of its object's DISPATCHER_HEADER.WaitListHead, then WaitBlockList, the state
        Waiting and the wait reason.  Up to THREAD_WAIT_OBJECTS (3) blocks live in
        KTHREAD.WaitBlock[]; more need the caller's own array (here: pool).

        Windows 7 links the blocks in a ring through NextWaitBlock, and a wait with a time-out
        puts the thread's timer block (WaitBlock[TIMER_WAIT_BLOCK = 3], Object = &KTHREAD.Timer,
        WaitKey STATUS_TIMEOUT) in the ring; Windows 8 and later keep WaitBlockCount blocks in
        the array and the timer apart.

        `irql`: the caller's IRQL, which the wait records in KTHREAD.WaitIrql before it raises
        to SYNCH_LEVEL (ReactOS ntoskrnl/ke/wait.c KeWaitForSingleObject and
        KeWaitForMultipleObjects: `Thread->WaitIrql = KiAcquireDispatcherLock()`, which returns
        the IRQL it raised from; WRK base/ntos/ke/wait.c: `Thread->WaitIrql =
        KeRaiseIrqlToSynchLevel()`).  Only a wait with a zero time-out may be made at
        DISPATCH_LEVEL, and that one never leaves the thread Waiting (MS docs,
        KeWaitForSingleObject remarks)."""
        kt = "_KTHREAD"
        wbsize = self.size("_KWAIT_BLOCK")
        wb0 = thread + self.off(kt, "WaitBlock") if len(objects) <= 3 else self.alloc(wbsize * len(objects))
        ring = self.has("_KWAIT_BLOCK", "NextWaitBlock")
        blocks = [wb0 + i * wbsize for i in range(len(objects))]
        timer_block = None
        if ring and timeout:
            timer_block = thread + self.off(kt, "WaitBlock") + 3 * wbsize
        chain = blocks + ([timer_block] if timer_block else [])
        active = self.has("_KWAIT_BLOCK", "BlockState")
        for i, obj in enumerate(objects):
            fields = dict(Thread=thread, Object=obj, WaitKey=i, WaitType=1 if wait_type == "any" else 0)
            if ring:
                fields["NextWaitBlock"] = chain[(i + 1) % len(chain)]
            if active:
                fields["BlockState"] = self.enum("_KWAIT_BLOCK_STATE", "WaitBlockActive")
            self.put("_KWAIT_BLOCK", blocks[i], **fields)
            self._queue_wait_block(obj, blocks[i])
        if timer_block:
            fields = dict(Thread=thread, Object=thread + self.off(kt, "Timer"), WaitKey=0x102, WaitType=1,
                          NextWaitBlock=chain[0])
            if active:
                fields["BlockState"] = self.enum("_KWAIT_BLOCK_STATE", "WaitBlockActive")
            self.put("_KWAIT_BLOCK", timer_block, **fields)
        self.put(kt, thread, WaitBlockList=wb0, State=self.enum("_KTHREAD_STATE", "Waiting"), WaitIrql=irql)
        if self.has(kt, "WaitBlockCount"):
            self.put(kt, thread, WaitBlockCount=len(objects))
        if wait_reason:
            self.put(kt, thread, WaitReason=self.enum("_KWAIT_REASON", wait_reason))

    def _queue_wait_block(self, obj, wb):
        """InsertTailList(&Object->Header.WaitListHead, &WaitBlock->WaitListEntry), when the
        object's header is laid out (a list head that points somewhere)."""
        head = obj + self.off("_DISPATCHER_HEADER", "WaitListHead")
        if self._u64(head):
            self.list_insert_tail(head, wb + self.off("_KWAIT_BLOCK", "WaitListEntry"))

    def sleep(self, thread, irql=0):
        """KeDelayExecutionThread: a wait on nothing but the thread's own timer (KTHREAD.Timer),
        wait reason DelayExecution.

        Windows 7 (WRK base/ntos/ke/wait.c KeDelayExecutionThread): WaitBlockList is the timer
        wait block WaitBlock[TIMER_WAIT_BLOCK = 3], a ring of one whose Object is &Thread->Timer.
        Windows 8 and later (decompiled Win10/11 KeDelayExecutionThread): WaitBlock[0] with
        Object = (PVOID)-1 and BlockState WaitBlockInactive, WaitBlockCount = 1 — the block
        names nothing the thread waits for; the timer is armed apart.  WaitIrql = the caller's
        `irql`, as for wait_on (ReactOS ke/wait.c KeDelayExecutionThread)."""
        kt = "_KTHREAD"
        timer = thread + self.off(kt, "Timer")
        self.put("_KTIMER", timer, Header__Type=self.enum("_KOBJECTS", "TimerNotificationObject"))
        wb0 = thread + self.off(kt, "WaitBlock")
        if self.has("_KWAIT_BLOCK", "NextWaitBlock"):
            wb = wb0 + 3 * self.size("_KWAIT_BLOCK")
            fields = dict(Thread=thread, Object=timer, WaitKey=0x102, WaitType=1, NextWaitBlock=wb)
            if self.has("_KWAIT_BLOCK", "BlockState"):
                fields["BlockState"] = self.enum("_KWAIT_BLOCK_STATE", "WaitBlockActive")
            self.put("_KWAIT_BLOCK", wb, **fields)
            self.put(kt, thread, WaitBlockList=wb)
        else:
            self.put("_KWAIT_BLOCK", wb0, Thread=thread, Object=0xffffffffffffffff, WaitType=1,
                     BlockState=self.enum("_KWAIT_BLOCK_STATE", "WaitBlockInactive"))
            self.put(kt, thread, WaitBlockList=wb0, WaitBlockCount=1)
        self.put(kt, thread, State=self.enum("_KTHREAD_STATE", "Waiting"), WaitIrql=irql,
                 WaitReason=self.enum("_KWAIT_REASON", "DelayExecution"))

    # -- dispatcher objects ---------------------------------------------------------------------

    def event(self, notification=True, signaled=False, address=None, pool_tag=None):
        """KeInitializeEvent on a KEVENT at `address`, or in a pool block of its own (tagged
        `pool_tag` when given)."""
        if address is not None:
            a = address
        elif pool_tag is not None:
            a = self.alloc_pool(self.size("_KEVENT"), pool_tag)
        else:
            a = self.alloc(self.size("_KEVENT"))
        typ = "EventNotificationObject" if notification else "EventSynchronizationObject"
        self.put("_KEVENT", a, Header__Type=self.enum("_KOBJECTS", typ), Header__Size=6,
                 Header__SignalState=1 if signaled else 0)
        self.list_init(a + self.off("_DISPATCHER_HEADER", "WaitListHead"))
        return a

    def semaphore(self, limit=0x7fffffff):
        a = self.alloc(self.size("_KSEMAPHORE"))
        self.put("_KSEMAPHORE", a, Header__Type=self.enum("_KOBJECTS", "SemaphoreObject"), Header__Size=8,
                 Limit=limit)
        self.list_init(a + self.off("_DISPATCHER_HEADER", "WaitListHead"))
        return a

    def mutant(self, owner=None, address=None):
        a = address if address is not None else self.alloc(self.size("_KMUTANT"))
        self.put("_KMUTANT", a, Header__Type=self.enum("_KOBJECTS", "MutantObject"), Header__Size=0xe,
                 Header__SignalState=0 if owner else 1, OwnerThread=owner or 0)
        self.list_init(a + self.off("_DISPATCHER_HEADER", "WaitListHead"))
        if owner:
            self.list_insert_tail(owner + self.off("_KTHREAD", "MutantListHead"),
                                  a + self.off("_KMUTANT", "MutantListEntry"))
        return a

    def fast_mutex(self, owner=None, address=None):
        """A FAST_MUTEX (on 8.1 and later also what KGUARDED_MUTEX is)."""
        a = address if address is not None else self.alloc(self.size("_FAST_MUTEX"))
        self.put("_FAST_MUTEX", a, Count=0 if owner else 1, Owner=owner or 0)
        self.event(notification=False, address=a + self.off("_FAST_MUTEX", "Event"))
        return a

    def wait_fast_mutex(self, thread, fm, irql=APC_LEVEL):
        """ExAcquireFastMutex finding the mutex owned (ReactOS ntoskrnl/include/internal/ex.h
        _ExAcquireFastMutex): it raises to APC_LEVEL first, counts the contention and waits on
        the mutex's event -- so the wait records WaitIrql APC_LEVEL.  ExAcquireFastMutexUnsafe
        does not raise (`irql=` the caller's, PASSIVE_LEVEL inside a critical region)."""
        self.put("_FAST_MUTEX", fm, Contention=1)
        self.wait_on(thread, [fm + self.off("_FAST_MUTEX", "Event")], "WrFastMutex", irql=irql)


    # -- rundown protection ------------------------------------------------------------------

    def rundown_ref(self, address=None):
        """ExInitializeRundownProtection: an EX_RUNDOWN_REF of value 0 (in pool or at `address`)."""
        if address is None:
            return self.alloc(8, align=8)
        self.mem.map(address, 8)
        self.u64(address, 0)
        return address

    def acquire_rundown(self, ref):
        """ExAcquireRundownProtection (ReactOS ntoskrnl/ex/rundown.c): the count, above bit 0
        (EX_RUNDOWN_COUNT_SHIFT 1), goes up by one (EX_RUNDOWN_COUNT_INC 2) while the ref is not
        being run down (EX_RUNDOWN_ACTIVE, bit 0, clear)."""
        v = self._u64(ref)
        if v & 1:
            raise ValueError("rundown ref 0x%x is being run down: the acquire fails" % ref)
        self.u64(ref, v + 2)

    def wait_for_rundown(self, thread, ref):
        """ExfWaitForRundownProtectionRelease (ReactOS ntoskrnl/ex/rundown.c) with references
        outstanding: an EX_RUNDOWN_WAIT_BLOCK {Count, WakeEvent} on the waiter's stack (in its
        ExfWaitForRundownProtectionRelease frame), Count = the references (value >> 1), the
        WakeEvent a SynchronizationEvent, the ref = the block's address | EX_RUNDOWN_ACTIVE,
        then KeWaitForSingleObject(&WakeEvent, Executive)."""
        v = self._u64(ref)
        if not v >> 1:
            raise ValueError("rundown ref 0x%x has no references: the wait returns at once" % ref)
        frame = self.first_frame(thread, ("nt!ExfWaitForRundownProtectionRelease",
                                          "nt!ExWaitForRundownProtectionRelease",
                                          "nt!ExWaitForRundownProtectionReleaseCacheAware"))
        sp = frame[1] if frame else self._u64(thread + self.off("_KTHREAD", "KernelStack")) + 0x100
        wb = (sp + 0x10 + 0xf) & ~0xf                 # Count at +0, WakeEvent at +8 (0x20 bytes)
        self.u64(wb, v >> 1)
        event = self.event(notification=False, address=wb + 8)
        self.u64(ref, wb | 1)
        self.wait_on(thread, [event], "Executive")
        return wb
