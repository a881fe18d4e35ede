"""The clock: timer resolution requests and the clock's interval."""



class TimersMixin(object):
    def timer_resolution(self, process, requested, smallest):
        """NtSetTimerResolution's record: `process` on nt!ExpTimerResolutionListHead with its
        Requested/SmallestTimerResolution (100 ns units)."""
        head = self.timer_res_head
        self.put("_EPROCESS", process, RequestedTimerResolution=requested, SmallestTimerResolution=smallest)
        self.list_insert_tail(head, process + self.off("_EPROCESS", "TimerResolutionLink"))

    def time_increment(self, current, minimum=5000):
        """The clock's current interval (KeTimeIncrement) and finest possible (KeMinimumIncrement)."""
        self.u32(self.symbols["nt!KeTimeIncrement"], current)
        self.u32(self.symbols["nt!KeMinimumIncrement"], minimum)

