"""The clock: timer resolution requests and the clock's interval.

The routines here do what the kernel's routines write, in their order (public sources:
decompiled x64 ntoskrnl `NtSetTimerResolution`, `ExpInsertTimerResolutionEntry`,
`ExpUpdateTimerResolution`, `ExSetTimerResolution`, Windows 7 to 11 builds; ReactOS
ntoskrnl/ex/time.c `ExSetTimerResolution`/`NtQueryTimerResolution` for the older shape;
Microsoft's `ExSetTimerResolution` page, MicrosoftDocs/windows-driver-docs-ddi
wdk-ddi-src/content/wdm/nf-wdm-exsettimerresolution.md):

    b.set_timer_resolution(p, 10000)          # NtSetTimerResolution(10000, TRUE) in process p
    b.set_timer_resolution(p, 0, set=False)   # NtSetTimerResolution(.., FALSE): p stops asking
    b.ex_set_timer_resolution(5000)           # a driver's ExSetTimerResolution(5000, TRUE)
    b.ignore_timer_resolution(p)              # Flags3.TimerResolutionIgnore set, then recompute

`timer_resolution()` and `time_increment()` are the older raw writers: they put values in
memory without playing any routine (see their docstrings).
"""
import json
import os

from ...target.layouts import LAYOUT_DIR

STACK_RECORD_SIZE = 0x40     # _PO_DIAG_STACK_RECORD is not in the layouts: an opaque block

_GLOBALS = {}


def _globals_present(build):
    if build not in _GLOBALS:
        with open(os.path.join(LAYOUT_DIR, build + ".json")) as f:
            _GLOBALS[build] = set(json.load(f).get("globals_present", ()))
    return _GLOBALS[build]


class TimersMixin(object):
    # -- raw state (kept for the scenarios and scripts that use them) ---------------------------

    def timer_resolution(self, process, requested, smallest):
        """RAW STATE, not a routine: `process` appended to nt!ExpTimerResolutionListHead with
        Requested/SmallestTimerResolution as given (100 ns units).  It sets no
        EPROCESS.Flags.SetTimerResolution bit and no SetTimerResolutionLink bit, counts
        nothing, inserts at the tail (the kernel inserts at the head) and leaves the clock
        alone: a process with RequestedTimerResolution != 0 and the flag clear is a state the
        kernel never writes.  Use set_timer_resolution() for what the kernel writes."""
        head = self.timer_res_head
        self.put("_EPROCESS", process, RequestedTimerResolution=requested, SmallestTimerResolution=smallest)
        self.list_insert_tail(head, process + self.off("_EPROCESS", "TimerResolutionLink"))

    def time_increment(self, current, minimum=5000):
        """RAW STATE: the clock's current interval (KeTimeIncrement) and finest possible
        (KeMinimumIncrement), written as given, whoever asks (or nobody)."""
        self.u32(self.symbols["nt!KeTimeIncrement"], current)
        self.u32(self.symbols["nt!KeMinimumIncrement"], minimum)

    # -- the kernel's globals ---------------------------------------------------------------

    def _timer_global(self, name):
        """nt!`name` (a ULONG, 0 at boot), laid out on first use; only a global that this
        build's symbols have (the layout's globals_present)."""
        full = "nt!" + name
        if full in self.symbols:
            return self.symbols[full]
        if name not in _globals_present(self.build):
            raise KeyError("%s: not in %s's globals_present" % (full, self.build))
        return self._boot_global(full, 4)

    def _timer_globals(self):
        """The kernel image holds these from boot (0 until used); the builder lays them out when
        a scenario first plays a timer routine, so targets that never do keep their layout."""
        for name in ("ExpTimerResolutionCount", "ExpKernelResolutionCount", "ExpKernelRequestedTimerResolution"):
            if name in _globals_present(self.build):
                self._timer_global(name)

    def _timer_u32(self, name):
        return self._u32(self._timer_global(name))

    def _set_timer_u32(self, name, v):
        self.u32(self._timer_global(name), v)

    def _eprocess_bit(self, process, field):
        off, f = self._resolve("_EPROCESS", field)
        return (self._u32(process + off) >> f.bit_position) & 1

    def _insert_timer_resolution_entry(self, entry):
        """ExpInsertTimerResolutionEntry (decompiled): InsertHeadList(&ExpTimerResolutionListHead,
        entry) -- Flink = the old first entry, Blink = the head, then the old first's Blink and
        the head's Flink point at it."""
        head = self.timer_res_head
        first = self._u64(head)
        self.u64(entry, first)
        self.u64(entry + 8, head)
        self.u64(first + 8, entry)
        self.u64(head, entry)

    def _last_requested(self):
        """ExpLastRequestedTime: the interval ExpUpdateTimerResolution last asked the HAL for.
        The builds' symbols here do not list it, so it is the builder's own bookkeeping,
        starting from the clock's interval now."""
        last = getattr(self, "_exp_last_requested", None)
        if last is None:
            last = self._u32(self.symbols["nt!KeTimeIncrement"])
        return last

    # -- ExpUpdateTimerResolution -------------------------------------------------------------

    def _update_timer_resolution(self, set_, desired):
        """ExpUpdateTimerResolution(Set, Desired) (decompiled, Windows 10/11 builds):
        with Set, only a finer interval than the last asked for and than KeMaximumIncrement
        changes anything; without Set, the interval is recomputed from KeMaximumIncrement, the
        kernel's own request (ExpKernelRequestedTimerResolution while ExpKernelResolutionCount
        != 0) and every process on ExpTimerResolutionListHead whose Flags.SetTimerResolution
        (0x1000) is set and whose Flags3.TimerResolutionIgnore (0x4000000, where the build has
        it) is clear, taking the smallest RequestedTimerResolution.  Either way it is clamped to
        KeMinimumIncrement and, when it differs from ExpLastRequestedTime, handed to the HAL
        (ExpUpdateTimerConfiguration), which sets KeTimeIncrement to the interval it can give:
        exactly the one asked for, or, with `hal_steps` set on the builder (a sorted list of
        the intervals the clock hardware offers), the largest one at or below it, as ReactOS's
        HalSetTimeIncrement does ("Lookup largest value below given Increment ... Return the
        real increment").  Returns KeTimeIncrement."""
        maximum = self._u32(self.symbols["nt!KeMaximumIncrement"])
        minimum = self._u32(self.symbols["nt!KeMinimumIncrement"])
        last = self._last_requested()
        if set_:
            if desired >= last or desired >= maximum:
                return self._u32(self.symbols["nt!KeTimeIncrement"])
            new = desired
        else:
            new = maximum
            if self._timer_u32("ExpKernelResolutionCount"):
                new = min(new, self._timer_u32("ExpKernelRequestedTimerResolution"))
            link = self.off("_EPROCESS", "TimerResolutionLink")
            ignore = self.has("_EPROCESS", "TimerResolutionIgnore")
            entry = self._u64(self.timer_res_head)
            while entry != self.timer_res_head:
                p = entry - link
                if (self._eprocess_bit(p, "SetTimerResolution")
                        and not (ignore and self._eprocess_bit(p, "TimerResolutionIgnore"))):
                    new = min(new, self._u32(p + self.off("_EPROCESS", "RequestedTimerResolution")))
                entry = self._u64(entry)
        if new < minimum:
            new = minimum
        if new != last:
            self._exp_last_requested = new
            steps = [s for s in getattr(self, "hal_steps", None) or () if s <= new]
            self.u32(self.symbols["nt!KeTimeIncrement"], max(steps) if steps else new)
        return self._u32(self.symbols["nt!KeTimeIncrement"])

    # -- NtSetTimerResolution -------------------------------------------------------------------

    def set_timer_resolution(self, process, interval, set=True):
        """NtSetTimerResolution(interval, set) called in `process` (decompiled x64 ntoskrnl,
        Windows 7 to 11 builds).  With `set`:
          1. Flags |= SetTimerResolution (bit 12) | SetTimerResolutionLink (bit 31); if the Link
             bit was clear, ExpInsertTimerResolutionEntry puts EPROCESS.TimerResolutionLink at
             the HEAD of nt!ExpTimerResolutionListHead (once per process: it stays there);
          2. if SetTimerResolution was clear, ++ExpTimerResolutionCount;
          3. RequestedTimerResolution = interval;
          4. if the process has no TimerResolutionStackRecord or interval is finer than its
             SmallestTimerResolution, PoDiagCaptureUsermodeStack's record replaces it and
             SmallestTimerResolution = interval (a running minimum of the requests whose stack
             was captured; the record is an opaque block here);
          5. unless Flags3.TimerResolutionIgnore is set (builds that have it), the clock is
             recomputed: ExpUpdateTimerResolution(Set = interval <= the previous request, or
             TRUE on a first request).
        Without `set`: SetTimerResolution is cleared; if it was set, --ExpTimerResolutionCount,
        RequestedTimerResolution = 0 and the clock is recomputed from every live request; if
        it was clear nothing changes (STATUS_TIMER_RESOLUTION_NOT_SET).  SmallestTimerResolution,
        the stack record and the list entry stay.  Returns KeTimeIncrement afterwards."""
        self._timer_globals()
        flags_off, f_set = self._resolve("_EPROCESS", "SetTimerResolution")
        _, f_link = self._resolve("_EPROCESS", "SetTimerResolutionLink")
        set_bit, link_bit = 1 << f_set.bit_position, 1 << f_link.bit_position
        old = self._u32(process + flags_off)
        requested_at = process + self.off("_EPROCESS", "RequestedTimerResolution")
        if set:
            self.u32(process + flags_off, old | set_bit | link_bit)
            if not old & link_bit:
                self._insert_timer_resolution_entry( process + self.off("_EPROCESS", "TimerResolutionLink"))
            if old & set_bit:
                honour = interval <= self._u32(requested_at)
            else:
                self._set_timer_u32("ExpTimerResolutionCount", self._timer_u32("ExpTimerResolutionCount") + 1)
                honour = True
            self.u32(requested_at, interval)
            record_at = process + self.off("_EPROCESS", "TimerResolutionStackRecord")
            smallest_at = process + self.off("_EPROCESS", "SmallestTimerResolution")
            if not self._u64(record_at) or interval < self._u32(smallest_at):
                self.u32(smallest_at, interval)
                self.u64(record_at, self.alloc(STACK_RECORD_SIZE))
            if (self.has("_EPROCESS", "TimerResolutionIgnore")
                    and self._eprocess_bit(process, "TimerResolutionIgnore")):
                return self._u32(self.symbols["nt!KeTimeIncrement"])
            return self._update_timer_resolution(honour, interval)
        self.u32(process + flags_off, old & ~set_bit)
        if not old & set_bit:
            return self._u32(self.symbols["nt!KeTimeIncrement"])
        self._set_timer_u32("ExpTimerResolutionCount", self._timer_u32("ExpTimerResolutionCount") - 1)
        self.u32(requested_at, 0)
        return self._update_timer_resolution(False, 0)

    def ignore_timer_resolution(self, process, ignore=True):
        """The kernel marks `process`'s request as ignored (EPROCESS.Flags3.TimerResolutionIgnore;
        Windows 11 does so for a process whose windows are occluded or minimised -- Microsoft's
        timeBeginPeriod and SetProcessInformation(ProcessPowerThrottling,
        PROCESS_POWER_THROTTLING_IGNORE_TIMER_RESOLUTION) pages), then recomputes the clock:
        the decompiled PspSetProcessPpmPolicy calls ExpUpdateTimerResolution (its XREFs; its
        body was not read here, so the flag write then a full recompute is the assumption).
        Only on builds whose _EPROCESS has the field."""
        if not self.has("_EPROCESS", "TimerResolutionIgnore"):
            raise KeyError("_EPROCESS.TimerResolutionIgnore: not in %s's layout" % self.build)
        self._timer_globals()
        self.put("_EPROCESS", process, TimerResolutionIgnore=1 if ignore else 0)
        return self._update_timer_resolution(False, 0)

    # -- ExSetTimerResolution -------------------------------------------------------------------

    def ex_set_timer_resolution(self, interval, set=True):
        """A driver's ExSetTimerResolution(interval, set) (decompiled x64 ntoskrnl, Windows 10
        builds; Microsoft's ExSetTimerResolution page): with `set`, ++ExpKernelResolutionCount,
        and if that is the first open request or `interval` is finer than
        ExpKernelRequestedTimerResolution, ExpKernelRequestedTimerResolution = interval and
        ExpUpdateTimerResolution(TRUE, interval).  Without `set`, if requests are open,
        --ExpKernelResolutionCount, and when the last one closes
        ExpKernelRequestedTimerResolution = 0 and the clock is recomputed.  (The kernel keeps
        one request for all drivers: the finest asked while any is open.  ReactOS and NT 5
        count the kernel's first request in ExpTimerResolutionCount instead; the decompiled
        builds do not touch it.)  Returns KeTimeIncrement afterwards."""
        self._timer_globals()
        count = self._timer_u32("ExpKernelResolutionCount")
        if set:
            self._set_timer_u32("ExpKernelResolutionCount", count + 1)
            if count + 1 == 1 or interval < self._timer_u32("ExpKernelRequestedTimerResolution"):
                self._set_timer_u32("ExpKernelRequestedTimerResolution", interval)
                return self._update_timer_resolution(True, interval)
        elif count:
            self._set_timer_u32("ExpKernelResolutionCount", count - 1)
            if count == 1:
                self._set_timer_u32("ExpKernelRequestedTimerResolution", 0)
                return self._update_timer_resolution(False, 0)
        return self._u32(self.symbols["nt!KeTimeIncrement"])
