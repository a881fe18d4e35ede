"""Processes, threads, their waits, and dispatcher objects."""
from .memory import STACK_SIZE, ThreadInfo


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
               frames=(), pid=None):
        """A thread of `process` (an _EPROCESS address).  frames: innermost first, as
        `module!Func+0xoff` strings; the builder gives each a stack pointer on its stack."""
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

    def frame_sp(self, thread, function):
        """The stack pointer of the first frame of `thread` in `function` (module!Func)."""
        for spec, sp in self.threads[thread].frames:
            if spec.split("+")[0].lower() == function.lower():
                return sp
        raise KeyError("thread 0x%x has no frame in %s" % (thread, function))

    def stack_word(self, thread, function, offset, value):
        """Write a word into the frame of `function` on `thread`'s stack (a spilled register
        or argument home slot)."""
        self.u64(self.frame_sp(thread, function) + offset, value)

    def wait_on(self, thread, objects, wait_reason=None):
        """Make `thread` wait on dispatcher objects (WaitAny), wait blocks as its build lays them."""
        kt = "_KTHREAD"
        wb0 = thread + self.off(kt, "WaitBlock")
        wbsize = self.size("_KWAIT_BLOCK")
        ring = self.has("_KWAIT_BLOCK", "NextWaitBlock")
        for i, obj in enumerate(objects):
            wb = wb0 + i * wbsize
            fields = dict(Thread=thread, Object=obj, WaitKey=i, WaitType=1)
            if ring:
                fields["NextWaitBlock"] = wb0 + ((i + 1) % len(objects)) * wbsize
            if self.has("_KWAIT_BLOCK", "BlockState"):
                fields["BlockState"] = self.enum("_KWAIT_BLOCK_STATE", "WaitBlockActive")
            self.put("_KWAIT_BLOCK", wb, **fields)
        self.put(kt, thread, WaitBlockList=wb0, State=self.enum("_KTHREAD_STATE", "Waiting"))
        if self.has(kt, "WaitBlockCount"):
            self.put(kt, thread, WaitBlockCount=len(objects))
        if wait_reason:
            self.put(kt, thread, WaitReason=self.enum("_KWAIT_REASON", wait_reason))

    def sleep(self, thread):
        """KeDelayExecutionThread: the thread waits on its own KTHREAD.Timer."""
        timer = thread + self.off("_KTHREAD", "Timer")
        self.put("_KTIMER", timer, Header__Type=self.enum("_KOBJECTS", "TimerNotificationObject"))
        self.wait_on(thread, [timer], "DelayExecution")

    # -- dispatcher objects ---------------------------------------------------------------------

    def event(self, notification=True, signaled=False, address=None):
        a = address if address is not None else self.alloc(self.size("_KEVENT"))
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

    def wait_fast_mutex(self, thread, fm):
        self.put("_FAST_MUTEX", fm, Contention=1)
        self.wait_on(thread, [fm + self.off("_FAST_MUTEX", "Event")], "WrFastMutex")

