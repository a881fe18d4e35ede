"""Processors, DPC queues, the DPC watchdog, and the bug check."""
from .memory import MAX_PROCESSORS, PAGE


class DpcMixin(object):
    # -- processors, bug check ------------------------------------------------------------------

    def processor(self, index, current_thread=0, idle_thread=0):
        prcb = self.alloc(self.size("_KPRCB"), align=PAGE)
        self.put("_KPRCB", prcb, Number=index, CurrentThread=current_thread, IdleThread=idle_thread)
        for i in range(2):          # KiInitializePcr / KiInitializeProcessor: empty queues
            data = prcb + self.off("_KPRCB", "DpcData") + i * self.size("_KDPC_DATA")
            if self.has("_KDPC_DATA", "DpcListHead"):    # 7: a doubly linked list head
                self.list_init(data + self.off("_KDPC_DATA", "DpcListHead"))
            else:                   # 8.1+: ListHead.Next = NULL, LastEntry = &ListHead
                dl = data + self.off("_KDPC_DATA", "DpcList")
                self.put("_KDPC_LIST", dl, LastEntry=dl + self.off("_KDPC_LIST", "ListHead"))
        if self.has("_KPRCB", "DispatcherReadyListHead"):   # KiInitializeProcessor: 32 empty ready lists
            for pri in range(32):
                self.list_init(prcb + self.off("_KPRCB", "DispatcherReadyListHead") + pri * self.size("_LIST_ENTRY"))
        self.processors.append({"index": index, "prcb": "0x%x" % prcb})
        # what a debugger reads to find the processors: KiProcessorBlock[], KeNumberProcessors
        if self._processor_block is None:
            self._processor_block = self.global_("nt!KiProcessorBlock", 8 * MAX_PROCESSORS)
            self._processor_count = self.global_("nt!KeNumberProcessors", 4)
        self.u64(self._processor_block + 8 * index, prcb)
        self.u32(self._processor_count, len(self.processors))
        return prcb

    def set_current(self, cpu, thread, idle_thread=None):
        """What processor `cpu` runs now (and its idle thread)."""
        self.put("_KPRCB", self._prcb(cpu), CurrentThread=thread)
        if idle_thread is not None:
            self.put("_KPRCB", self._prcb(cpu), IdleThread=idle_thread)

    def _set_next_processor(self, thread, cpu):
        name = "NextProcessorNumber" if self.has("_KTHREAD", "NextProcessorNumber") else "NextProcessor"
        self.put("_KTHREAD", thread, **{name: cpu})

    def ready_thread(self, thread, cpu, priority=8):
        """KiReadyThread -> KxQueueReadyThread (WRK base/ntos/ke/thredsup.c, amd64 kix.h): the
        thread becomes Ready on processor `cpu` — State = Ready, NextProcessor = cpu, its
        WaitListEntry at the tail of that PRCB's DispatcherReadyListHead[Priority], and the
        priority's bit in ReadySummary."""
        prcb = self._prcb(cpu)
        self.put("_KTHREAD", thread, State=self.enum("_KTHREAD_STATE", "Ready"), Priority=priority)
        self._set_next_processor(thread, cpu)
        head = prcb + self.off("_KPRCB", "DispatcherReadyListHead") + priority * self.size("_LIST_ENTRY")
        self.list_insert_tail(head, thread + self.off("_KTHREAD", "WaitListEntry"))
        self.put("_KPRCB", prcb, ReadySummary=self._u32(prcb + self.off("_KPRCB", "ReadySummary")) | (1 << priority))

    def standby_thread(self, thread, cpu):
        """KiDeferredReadyThread choosing `thread` to preempt what `cpu` runs (WRK thredsup.c):
        State = Standby, NextProcessor = cpu, and the PRCB's NextThread = the thread."""
        self.put("_KTHREAD", thread, State=self.enum("_KTHREAD_STATE", "Standby"))
        self._set_next_processor(thread, cpu)
        self.put("_KPRCB", self._prcb(cpu), NextThread=thread)

    def _prcb(self, index):
        return int(next(p["prcb"] for p in self.processors if p["index"] == index), 16)

    def _dpc_data(self, index, threaded):
        return self._prcb(index) + self.off("_KPRCB", "DpcData") + (1 if threaded else 0) * self.size("_KDPC_DATA")

    def queue_dpc(self, cpu, routine, threaded=False, importance=1, context=0, number=0, address=None):
        """KeInsertQueueDpc: a KDPC for `routine` (module!Func[+off]) on CPU `cpu`'s normal or
        threaded queue, linked as this build links them: WRK ke/dpcobj.c KeInsertQueueDpc
        (7: LIST_ENTRY, InsertHeadList for HighImportance (2), else InsertTailList); decompiled
        8.1 KiInsertQueueDpc (SINGLE_LIST_ENTRY ListHead with LastEntry, which points at
        ListHead while the list is empty; HighImportance at the head, else after LastEntry).
        Then KDPC.DpcData, DpcQueueDepth + 1, DpcCount + 1.  `address`: where the KDPC lies
        (a published `!dpcs` gives it).  Returns the KDPC address."""
        if address is not None:
            k = address
            self.mem.map(k, self.size("_KDPC"))
        else:
            k = self.alloc(self.size("_KDPC"))
        data = self._dpc_data(cpu, threaded)
        typ = "ThreadedDpcObject" if threaded else "DpcObject"
        self.put("_KDPC", k, Type=self.enum("_KOBJECTS", typ), Importance=importance, Number=number,
                 DeferredRoutine=self.code(routine), DeferredContext=context, DpcData=data)
        link = k + self.off("_KDPC", "DpcListEntry")
        high = importance == 2                           # HighImportance
        if self.has("_KDPC_DATA", "DpcListHead"):
            head = data + self.off("_KDPC_DATA", "DpcListHead")
            if high:                                     # InsertHeadList
                first = self._u64(head)
                self.u64(link, first)
                self.u64(link + 8, head)
                self.u64(first + 8, link)
                self.u64(head, link)
            else:
                self.list_insert_tail(head, link)
        else:
            head = data + self.off("_KDPC_DATA", "DpcList")
            list_head = head + self.off("_KDPC_LIST", "ListHead")
            last = self._u64(head + self.off("_KDPC_LIST", "LastEntry")) or list_head
            if high:
                self.u64(link, self._u64(list_head))     # Next = ListHead.Next
                self.u64(list_head, link)
                if last == list_head:
                    self.put("_KDPC_LIST", head, LastEntry=link)
            else:
                self.u64(last, link)                     # LastEntry->Next = entry
                self.put("_KDPC_LIST", head, LastEntry=link)
        depth = self._u32(data + self.off("_KDPC_DATA", "DpcQueueDepth"))
        self.put("_KDPC_DATA", data, DpcQueueDepth=depth + 1,
                 DpcCount=self._u32(data + self.off("_KDPC_DATA", "DpcCount")) + 1)
        return k

    def dpc_watchdog(self, cpu, time_count=0, time_limit=0, watchdog_count=0, watchdog_period=0):
        """The PRCB's DPC watchdog counters, under whichever names this build gives them."""
        prcb = self._prcb(cpu)
        for names, v in ((("DpcTimeCount",), time_count), (("DpcTimeLimit", "DpcTimeLimitTicks"), time_limit),
                         (("DpcWatchdogCount",), watchdog_count),
                         (("DpcWatchdogPeriod", "DpcWatchdogPeriodTicks"), watchdog_period)):
            name = next(n for n in names if self.has("_KPRCB", n))
            self.put("_KPRCB", prcb, **{name: v})

    def running_dpc(self, cpu, routine, kdpc=0):
        """CPU `cpu` is running DPC `routine` now: DpcRoutineActive, and where the build has
        them CurrentDpcRoutine and the normal queue's ActiveDpc."""
        prcb = self._prcb(cpu)
        self.put("_KPRCB", prcb, DpcRoutineActive=1)
        if self.has("_KPRCB", "CurrentDpcRoutine"):
            self.put("_KPRCB", prcb, CurrentDpcRoutine=self.code(routine))
        if kdpc and self.has("_KDPC_DATA", "ActiveDpc"):
            self.put("_KDPC_DATA", self._dpc_data(cpu, False), ActiveDpc=kdpc)

    def live_dump(self, code, *args):
        """A kernel live dump (Microsoft, "Kernel Live Dump Code Reference": its code "can never
        be used for a real bug check; it is used to identify live dumps"): the code and four
        parameters are in the dump's header, which the debugger's bug check data reports; the
        system did not stop, so nt!KiBugCheckData is left as it was."""
        args = list(args) + [0] * (4 - len(args))
        self.bugcheck_data = {"code": "0x%x" % code, "args": ["0x%x" % v for v in args]}

    def bugcheck(self, code, *args, **kw):
        """KeBugCheckEx(code, args): nt!KiBugCheckData holds the code and its four parameters.
        `cpu=N, irql=I`: the processor that called it and the IRQL it ran at just before --
        what the crash dump saves as that processor's KPRCB.DebuggerSavedIRQL (Microsoft, !irql:
        "the IRQL saved in the crash dump file is the one immediately prior to the bug check,
        not the IRQL at which the KeBugCheckEx routine was executed").  Only that processor
        writes the field (ReactOS ntoskrnl/ke/bug.c KeBugCheckWithTf: `Prcb->DebuggerSavedIRQL =
        KeGetCurrentIrql();` on the bug-checking processor); the others, frozen, write nothing,
        so the builder has no operation that saves an IRQL for any other processor.  (Breaking
        in saves one for the processor that broke in -- ReactOS ntoskrnl/kd64/kdapi.c
        KdEnterDebugger -- but the analysis cannot learn which processor that was, so the
        builder does not play it.)"""
        cpu, irql = kw.pop("cpu", None), kw.pop("irql", None)
        if kw:
            raise TypeError("bugcheck: unexpected %s" % ", ".join(kw))
        if irql is not None:
            if cpu is None:
                raise TypeError("bugcheck: irql= needs cpu=, the processor that bug checks")
            self.put("_KPRCB", self._prcb(cpu), DebuggerSavedIRQL=irql)
        self.live_dump(code, *args)
        args = list(args) + [0] * (4 - len(args))
        a = self.global_("nt!KiBugCheckData", 5 * 8)
        for i, v in enumerate([code] + args):
            self.u64(a + 8 * i, v)

