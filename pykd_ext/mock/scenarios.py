"""The shipped mock targets, as short descriptions for the scenario builder.

    python -m pykd_ext.mock.scenarios mock_targets/      # regenerate every shipped target

Each function returns a ScenarioBuilder; nothing here is read by an analysis or a test's
expectation: tests assert facts they state themselves.
"""
import os
import sys

from .builder import ScenarioBuilder

WIN7 = "win7sp1-x64-6.1.7601.24540"
WIN81 = "win81-x64-6.3.9600.20237"
WIN10 = "win10-22h2-x64-10.0.19041.3570"
WIN11 = "win11-21h2-x64-10.0.22000.2538"

WAIT_TOP = ["nt!KiSwapContext+0x7a", "nt!KiCommitThreadWait+0x1d2", "nt!KeWaitForSingleObject+0x19f"]
SYSTEM_START = ["nt!PspSystemThreadStartup+0x5a", "nt!KiStartSystemThread+0x16"]
WORKER = ["nt!ExpWorkerThread+0x111"] + SYSTEM_START


def _background(b, system):
    """What every machine has besides the scenario: worker threads, a user process, a
    running thread on CPU 0, and a few uncontended resources."""
    for i, tid in enumerate((0x10, 0x14)):
        ev = b.event(notification=False)
        t = b.thread(system, tid, "nt!ExpWorkerThread", wait_reason="Executive",
                     waited_ticks=40 + i, frames=WAIT_TOP + ["nt!ExpWorkerThread+0x1a3"] + SYSTEM_START)
        b.wait_on(t, [ev])
    b.module("ntdll", "ntdll.dll", base=0x7ffb6b2a0000, size=0x1f5000)
    smss = b.process("smss.exe", 0x134)
    t = b.thread(smss, 0x138, "ntdll!RtlUserThreadStart", wait_reason="UserRequest", waited_ticks=900,
                 frames=WAIT_TOP + ["nt!NtWaitForSingleObject+0xc6", "nt!KiSystemServiceCopyEnd+0x13"])
    b.wait_on(t, [b.event(notification=True)])
    running = b.thread(system, 0x8, "nt!KiIdleLoop", state="Running", frames=["nt!KiIdleLoop+0x5a"])
    b.processor(0, current_thread=running, idle_thread=running)
    for name in ("nt!PiEngineLock", "nt!IopDeviceTreeLock", "nt!CmpRegistryLock"):
        b.eresource(name=name)
    for _ in range(3):
        b.eresource()
    return smss


def eresource_deadlock(build=WIN81):
    """Seed 001: TestDriver's FileMoveThread holds FileResource1 and waits for FileResource2;
    FileDeletionThread holds FileResource2 and waits for FileResource1.  FileCreationThread
    finished its loop and has terminated."""
    b = ScenarioBuilder(build, comment="TestDriver ERESOURCE deadlock (seed 001) on %s" % build)
    system = b.process("System", 4)
    _background(b, system)
    b.module("TestDriver", "TestDriver.sys", size=0x8000)
    drv = b.driver_object("\\Driver\\TestDriver")
    _, ext = b.device_object(drv, 2 * b.size("_ERESOURCE"))     # SYNC_RESOURCES
    r1 = b.eresource(address=ext)
    r2 = b.eresource(address=ext + b.size("_ERESOURCE"))
    acquire_wait = ["nt!ExpWaitForResource+0xae", "nt!ExAcquireResourceExclusiveLite+0x1f4"]
    b.thread(system, 0x1f0, "TestDriver!FileCreationThread", state="Terminated",
             frames=[])
    move = b.thread(system, 0x1f4, "TestDriver!FileMoveThread", waited_ticks=0x5a00,
                    frames=WAIT_TOP + acquire_wait + ["TestDriver!FileMoveThread+0x3c"] + SYSTEM_START)
    dele = b.thread(system, 0x1f8, "TestDriver!FileDeletionThread", waited_ticks=0x59f0,
                    frames=WAIT_TOP + acquire_wait + ["TestDriver!FileDeletionThread+0x3c"] + SYSTEM_START)
    b.acquire_resource(r1, move)
    b.acquire_resource(r2, dele)
    # the held resource's address also sits in the acquire frame (a saved rbx): the stack
    # scan must tell held from wanted
    b.stack_word(move, "nt!ExAcquireResourceExclusiveLite", 0x10, r1)
    b.stack_word(dele, "nt!ExAcquireResourceExclusiveLite", 0x10, r2)
    b.wait_resource(move, r2)
    b.wait_resource(dele, r1)
    return b


def hang_no_cycle(build=WIN11):
    """A filter's configuration lock held for three minutes by a worker that waits on an
    event nobody sets; an exclusive and a shared waiter queue behind it, and a third thread
    waits on a mutex held by the exclusive waiter.  No cycle: one chain, one root."""
    b = ScenarioBuilder(build, comment="no-cycle hang: SlowFlt holds gConfigLock while waiting on an event")
    system = b.process("System", 4)
    smss = _background(b, system)
    explorer = b.process("explorer.exe", 0xf3c)
    svchost = b.process("svchost.exe", 0x3e8)
    b.module("SlowFlt", "SlowFlt.sys", size=0x20000)
    lock = b.eresource(name="SlowFlt!gConfigLock")
    never = b.event(notification=True)
    owner = b.thread(system, 0x2c4, "nt!ExpWorkerThread", waited_ticks=11520,
                     frames=["nt!KiSwapContext+0x76", "nt!KiSwapThread+0x3a7", "nt!KiCommitThreadWait+0x14f",
                             "nt!KeWaitForSingleObject+0x233", "SlowFlt!WaitForService+0x44",
                             "SlowFlt!RefreshConfig+0x9b"] + WORKER)
    b.acquire_resource(lock, owner)
    b.wait_on(owner, [never], "Executive")
    acq_x = ["nt!ExpWaitForResource+0x6d", "nt!ExAcquireResourceExclusiveLite+0x1a6"]
    acq_s = ["nt!ExpWaitForResource+0x6d", "nt!ExAcquireResourceSharedLite+0x2b1"]
    writer = b.thread(explorer, 0x1b20, "ntdll!RtlUserThreadStart", waited_ticks=11000,
                      frames=["nt!KiSwapContext+0x76", "nt!KiSwapThread+0x3a7", "nt!KiCommitThreadWait+0x14f",
                              "nt!KeWaitForSingleObject+0x233"] + acq_x +
                      ["SlowFlt!PreWrite+0x71", "FLTMGR!FltpPerformPreCallbacks+0x2f4",
                       "nt!IofCallDriver+0x55", "nt!NtWriteFile+0x8c3"])
    b.wait_resource(writer, lock, exclusive=True)
    reader = b.thread(svchost, 0x4d0, "ntdll!RtlUserThreadStart", waited_ticks=10900,
                      frames=["nt!KiSwapContext+0x76", "nt!KiSwapThread+0x3a7", "nt!KiCommitThreadWait+0x14f",
                              "nt!KeWaitForSingleObject+0x233"] + acq_s +
                      ["SlowFlt!PreCreate+0x5d", "FLTMGR!FltpPerformPreCallbacks+0x2f4",
                       "nt!IofCallDriver+0x55", "nt!IopCreateFile+0x7d1"])
    b.wait_resource(reader, lock, exclusive=False)
    mutex = b.mutant(owner=writer)
    third = b.thread(explorer, 0x1b24, "ntdll!RtlUserThreadStart", waited_ticks=10500,
                     frames=["nt!KiSwapContext+0x76", "nt!KiSwapThread+0x3a7", "nt!KiCommitThreadWait+0x14f",
                             "nt!KeWaitForSingleObject+0x233", "nt!NtWaitForSingleObject+0x6a",
                             "nt!KiSystemServiceCopyEnd+0x25"])
    b.wait_on(third, [mutex], "UserRequest")
    del smss
    return b



def livedump_1cc_eresource(build=WIN11):
    """hang_no_cycle, caught by a kernel live dump rather than a crash: bug check code 0x1CC
    EXRESOURCE_TIMEOUT_LIVEDUMP (Microsoft's page: parameter 1 the ERESOURCE that timed out, 2
    the thread that detected the time-out, 3 the resource's contention count, 4 the configured
    time-out in seconds).  The writer waiting in ExpWaitForResource for SlowFlt!gConfigLock is
    the thread that detected it; 300 s is this scenario's choice of time-out."""
    b = hang_no_cycle(build)
    b.comment = "live dump 0x1CC: SlowFlt!gConfigLock timed out (the no-cycle hang, system still running)"
    lock = b.sym("SlowFlt!gConfigLock")
    writer = next(a for a, info in b.threads.items() if any(f == "SlowFlt!PreWrite+0x71" for f, _ in info.frames))
    b.live_dump(0x1CC, lock, writer, b._res(lock, "ContentionCount"), 300)
    return b

def self_deadlock_fastmutex(build=WIN10):
    """RecurseDrv's worker acquires its state fast mutex, then calls a helper that acquires
    it again: the thread waits on the mutex it owns."""
    b = ScenarioBuilder(build, comment="one-thread self-deadlock: a fast mutex acquired recursively")
    system = b.process("System", 4)
    _background(b, system)
    b.module("RecurseDrv", "RecurseDrv.sys", size=0x10000)
    fm = b.global_("RecurseDrv!gStateMutex", b.size("_FAST_MUTEX"))
    t = b.thread(system, 0x3a0, "RecurseDrv!RefreshWorker", waited_ticks=7680,
                 frames=["nt!KiSwapContext+0x76", "nt!KiSwapThread+0x500", "nt!KiCommitThreadWait+0x14f",
                         "nt!KeWaitForSingleObject+0x233", "nt!ExpAcquireFastMutexContended+0x7a",
                         "nt!ExAcquireFastMutex+0x162", "RecurseDrv!UpdateState+0x2e",
                         "RecurseDrv!RefreshWorker+0x51"] + SYSTEM_START)
    b.fast_mutex(owner=t, address=fm)
    b.wait_fast_mutex(t, fm)
    return b


PUSH_WAIT = ["nt!KiSwapContext+0x76", "nt!KiSwapThread+0x3a7", "nt!KiCommitThreadWait+0x14f",
             "nt!KeWaitForGate+0x101", "nt!ExfAcquirePushLockExclusiveEx+0x1a0"]
PUSH_WAIT_SHARED = ["nt!KiSwapContext+0x76", "nt!KiSwapThread+0x3a7", "nt!KiCommitThreadWait+0x14f",
                    "nt!KeWaitForGate+0x101", "nt!ExfAcquirePushLockSharedEx+0x1b7"]


def pushlock_shared_waiters(build=WIN10):
    """CacheFlt's flush worker took its table push lock exclusive and waits for a paging
    I/O that never completes (an event nobody sets); two readers (shared) and a writer
    (exclusive) queue behind it, 15 minutes.  The lock word records no owner: the worker's
    AutoBoost lock entry says it holds the lock (8.1, 10), and its flush frame keeps the
    lock's address (where the build has no lock entries, the stack is what is left)."""
    b = ScenarioBuilder(build, comment="push lock held exclusive by a worker waiting on an event; "
                                       "shared and exclusive waiters behind it (%s)" % build)
    system = b.process("System", 4)
    smss = _background(b, system)
    b.module("CacheFlt", "CacheFlt.sys", size=0x20000)
    lock = b.push_lock(name="CacheFlt!gTableLock")
    io_done = b.event(notification=True)
    worker = b.thread(system, 0x2d8, "nt!ExpWorkerThread", waited_ticks=57600,
                      frames=WAIT_TOP + ["CacheFlt!WaitForPagingIo+0x3e", "CacheFlt!FlushTable+0x91"] + WORKER)
    b.acquire_push_lock(lock, worker, exclusive=True)
    b.stack_word(worker, "CacheFlt!FlushTable", 0x20, lock)     # a local keeps &gTableLock
    b.wait_on(worker, [io_done], "Executive")
    readers = []
    for tid, proc, ticks in ((0x1a4, smss, 57000), (0x1a8, system, 56900)):
        t = b.thread(proc, tid, "CacheFlt!LookupWorker", waited_ticks=ticks,
                     frames=PUSH_WAIT_SHARED + ["CacheFlt!LookupEntry+0x2c", "CacheFlt!LookupWorker+0x40"]
                     + SYSTEM_START)
        b.wait_push_lock(t, lock, exclusive=False)
        readers.append(t)
    writer = b.thread(system, 0x1b0, "CacheFlt!InsertWorker", waited_ticks=56000,
                      frames=PUSH_WAIT + ["CacheFlt!InsertEntry+0x51", "CacheFlt!InsertWorker+0x33"] + SYSTEM_START)
    b.wait_push_lock(writer, lock, exclusive=True)
    return b


def pushlock_recursive(build=WIN10):
    """FsFilter's rename path takes its stream push lock exclusive, then calls a helper that
    takes it again: the thread waits on the lock it holds (its AutoBoost entry says so on
    8.1 and 10), and a second thread queues behind it."""
    b = ScenarioBuilder(build, comment="push lock acquired recursively: a one-thread self-deadlock (%s)" % build)
    system = b.process("System", 4)
    _background(b, system)
    b.module("FsFilter", "FsFilter.sys", size=0x20000)
    lock = b.push_lock(name="FsFilter!gStreamLock")
    t = b.thread(system, 0x3c4, "FsFilter!RenameWorker", waited_ticks=38400,
                 frames=PUSH_WAIT + ["FsFilter!LookupStream+0x22", "FsFilter!RenameStream+0x7d",
                                     "FsFilter!RenameWorker+0x51"] + SYSTEM_START)
    b.acquire_push_lock(lock, t, exclusive=True)
    b.wait_push_lock(t, lock, exclusive=True)
    other = b.thread(system, 0x3c8, "FsFilter!CloseWorker", waited_ticks=38000,
                     frames=PUSH_WAIT_SHARED + ["FsFilter!CloseStream+0x19", "FsFilter!CloseWorker+0x2a"]
                     + SYSTEM_START)
    b.wait_push_lock(other, lock, exclusive=False)
    return b


def selfwait_process_notify(build=WIN10):
    """AcmeAv's process-notify routine decides, while handling a process creation, to
    unregister itself: PsSetCreateProcessNotifyRoutineEx(Remove) waits for the callbacks in
    flight to finish -- its own call among them -- on the rundown protection that
    PspCallProcessNotifyRoutines holds for it.  AcmeAv's unload routine, on a worker thread,
    is in the same unregister call's stack shape but outside any callback, waiting on an event:
    not a self-wait."""
    b = ScenarioBuilder(build, comment="a process-notify callback unregistering itself (%s)" % build)
    system = b.process("System", 4)
    _background(b, system)
    b.module("AcmeAv", "AcmeAv.sys", size=0x20000)
    app = b.process("setup.exe", 0x1d30)
    rundown = b.rundown_ref()                       # the callback block's RundownProtect
    b.acquire_rundown(rundown)                       # PspCallProcessNotifyRoutines -> ExReferenceCallBackBlock
    wait = ["nt!KiSwapContext+0x76", "nt!KiSwapThread+0x3a7", "nt!KiCommitThreadWait+0x14f",
            "nt!KeWaitForSingleObject+0x233", "nt!ExfWaitForRundownProtectionRelease+0x81"]
    t = b.thread(app, 0x1d34, "ntdll!RtlUserThreadStart", waited_ticks=19200,
                 frames=wait + ["nt!PspSetCreateProcessNotifyRoutine+0x12c",
                                "nt!PsSetCreateProcessNotifyRoutineEx+0x17", "AcmeAv!OnProcessNotify+0x9e",
                                "nt!PspCallProcessNotifyRoutines+0x213", "nt!PspInsertThread+0x68c",
                                "nt!NtCreateUserProcess+0xa1a", "nt!KiSystemServiceCopyEnd+0x25"])
    b.wait_for_rundown(t, rundown)
    unload = b.thread(system, 0x4e8, "nt!ExpWorkerThread", waited_ticks=15000,
                      frames=wait + ["nt!PspSetCreateProcessNotifyRoutine+0x12c",
                                     "nt!PsSetCreateProcessNotifyRoutineEx+0x17", "AcmeAv!DriverUnload+0x31",
                                     "nt!IopLoadUnloadDriver+0x4f"] + WORKER)
    ev = b.event(notification=False)
    b.wait_on(unload, [ev], "Executive")
    return b


def crossobject_event(build=WIN10):
    """SyncDrv's flush thread holds its volume resource exclusive and waits for the flush
    completion event in its context block (pool tag 'SyDv'); the completion worker that would
    set that event first takes the same resource -- and waits for it, with a reader of another
    driver behind it.  Nothing in memory says who would set the event: the hang can only be
    suspected, with its reasoning."""
    b = ScenarioBuilder(build, comment="owner waits on an event behind which its own driver's waiter sits (%s)" % build)
    system = b.process("System", 4)
    _background(b, system)
    b.module("SyncDrv", "SyncDrv.sys", size=0x20000)
    b.module("OtherFs", "OtherFs.sys", size=0x20000)
    r = b.eresource(name="SyncDrv!gVolumeResource")
    done = b.event(notification=True, pool_tag="SyDv")
    owner = b.thread(system, 0x2f0, "SyncDrv!FlushThread", waited_ticks=76800,
                     frames=WAIT_TOP + ["SyncDrv!WaitFlushDone+0x2e", "SyncDrv!FlushVolume+0x88",
                                        "SyncDrv!FlushThread+0x41"] + SYSTEM_START)
    b.acquire_resource(r, owner)
    b.wait_on(owner, [done], "Executive")
    acq = ["nt!ExpWaitForResource+0x6d", "nt!ExAcquireResourceExclusiveLite+0x1a6"]
    worker = b.thread(system, 0x2f4, "SyncDrv!CompletionWorker", waited_ticks=76000,
                      frames=WAIT_TOP + acq + ["SyncDrv!CompleteFlush+0x35", "SyncDrv!CompletionWorker+0x22"]
                      + SYSTEM_START)
    b.wait_resource(worker, r)
    reader = b.thread(system, 0x2f8, "OtherFs!ReadThread", waited_ticks=70000,
                      frames=WAIT_TOP + ["nt!ExpWaitForResource+0x6d", "nt!ExAcquireResourceSharedLite+0x2b1",
                                         "SyncDrv!QueryVolume+0x19", "OtherFs!ReadThread+0x60"] + SYSTEM_START)
    b.wait_resource(reader, r, exclusive=False)
    return b


SPIN_CLOCK_TOP = ["nt!KeBugCheckEx", "nt!KeAccumulateTicks+0x1846d4", "nt!KeClockInterruptNotify+0x8b6",
                  "hal!HalpTimerClockInterrupt+0x10", "nt!KiCallInterruptServiceRoutine+0xa5",
                  "nt!KiInterruptSubDispatchNoLockNoEtw+0xfa", "nt!KiInterruptDispatchNoLockNoEtw+0x37"]
QUEUED_SPIN = ["nt!KxWaitForLockOwnerShip+0x2a", "nt!KeAcquireInStackQueuedSpinLock+0x7c"]


def spinlock_queued_abba(build=WIN10):
    """NetFlt takes its two in-stack queued spin locks in opposite orders: on CPU 1 the
    receive worker holds the adapter lock (its KLOCK_QUEUE_HANDLE in AdapterIndicate's frame)
    and spins for the filter lock; on CPU 2 the OID worker holds the filter lock (handle in
    FilterOid's frame) and spins for the adapter lock.  Each spinner's handle waits
    (LOCK_QUEUE_WAIT) behind the other's: a deadlock the queues record.  Broken in with the
    debugger; both processors at DISPATCH_LEVEL, which nothing records: the processor that
    broke in saved its IRQL (ReactOS kd64/kdapi.c KdEnterDebugger), but which one it was the
    analysis cannot learn, so no IRQL is saved here."""
    b, system, _, idle = _machine(build, "in-stack queued spin locks taken ABBA on two processors (%s)" % build)
    b.module("NetFlt", "NetFlt.sys", size=0x40000)
    adapter = b.spin_lock(name="NetFlt!gAdapterLock")
    filt = b.spin_lock(name="NetFlt!gFilterLock")
    rx = b.thread(system, 0x2e4, "NetFlt!ReceiveWorker", state="Running",
                  frames=["nt!KeYieldProcessorEx+0x17"] + QUEUED_SPIN
                  + ["NetFlt!FilterSendLocked+0x44", "NetFlt!AdapterIndicate+0x9c", "NetFlt!ReceiveWorker+0x31"]
                  + SYSTEM_START)
    oid = b.thread(system, 0x2e8, "NetFlt!OidWorker", state="Running",
                   frames=QUEUED_SPIN + ["NetFlt!AdapterQuery+0x3b", "NetFlt!FilterOid+0x77", "NetFlt!OidWorker+0x2c"]
                   + SYSTEM_START)
    b.processor(1, current_thread=rx, idle_thread=_idle_thread(b, idle))
    b.processor(2, current_thread=oid, idle_thread=_idle_thread(b, idle))
    _idle_cpu(b, idle, 3)
    b.acquire_in_stack_queued_spin_lock(rx, adapter, frame="NetFlt!AdapterIndicate")
    b.acquire_in_stack_queued_spin_lock(oid, filt, frame="NetFlt!FilterOid")
    b.acquire_in_stack_queued_spin_lock(rx, filt, irql=2)
    b.acquire_in_stack_queued_spin_lock(oid, adapter, irql=2)
    return b


def spinlock_plain_spinners(build=WIN10):
    """StorFlt's request-queue spin lock (a plain KSPIN_LOCK, word 1: no owner recorded).  CPU 3
    runs StorFlt's reset worker, which took the lock and now polls a controller that does not
    answer (KeStallExecutionProcessor in a loop) at DISPATCH_LEVEL.  CPU 1's idle thread runs
    StorFlt's completion DPC, spinning in KxWaitForSpinLockAndAcquire until the DPC watchdog
    fires (bug check 0x133 arg1 0); CPU 2's submit path spins too (KeYieldProcessorEx on top).
    Decoys: CPU 4 runs StorFlt's IOCTL path at PASSIVE_LEVEL, CPU 5 ndis's DPC at
    DISPATCH_LEVEL: neither is the holder.  Only CPU 1, which bug checks from its clock
    interrupt, saves an IRQL (CLOCK_LEVEL); CPU 3's and CPU 4's are recorded nowhere, so both
    are only same-module-thread candidates and CPU 5 (not StorFlt) none."""
    b, system, smss, idle = _machine(build, "plain spin lock: two spinners, a DISPATCH-level holder of the "
                                            "same driver (%s)" % build)
    b.module("StorFlt", "StorFlt.sys", size=0x30000)
    b.module("ndis", "ndis.sys", size=0x100000)
    lock = b.spin_lock(name="StorFlt!gRequestQueueLock")
    dpc = b.thread(idle, 0, "nt!KiIdleLoop", state="Running",
                   frames=SPIN_CLOCK_TOP + ["nt!KxWaitForSpinLockAndAcquire+0x2c",
                                            "nt!KeAcquireSpinLockAtDpcLevel+0x5c", "StorFlt!CompleteRequests+0x48",
                                            "StorFlt!CompletionDpc+0x21", "nt!KiExecuteAllDpcs+0x2e7",
                                            "nt!KiRetireDpcList+0x1f4", "nt!KiIdleLoop+0x9e"])
    b.processor(1, current_thread=dpc, idle_thread=dpc)
    submit = b.thread(system, 0x31c, "StorFlt!SubmitWorker", state="Running",
                      frames=["nt!KeYieldProcessorEx+0x17", "nt!KxWaitForSpinLockAndAcquire+0x2c",
                              "nt!KeAcquireSpinLockRaiseToDpc+0x8f", "StorFlt!QueueRequest+0x3a",
                              "StorFlt!SubmitWorker+0x66"] + SYSTEM_START)
    b.processor(2, current_thread=submit, idle_thread=_idle_thread(b, idle))
    reset = b.thread(system, 0x320, "StorFlt!ResetWorker", state="Running",
                     frames=["nt!KeStallExecutionProcessor+0x9d", "StorFlt!WaitControllerReady+0x52",
                             "StorFlt!ResetController+0x1c0", "StorFlt!ResetWorker+0x4b"] + SYSTEM_START)
    b.processor(3, current_thread=reset, idle_thread=_idle_thread(b, idle))
    user = b.thread(smss, 0x1c4, "ntdll!RtlUserThreadStart", state="Running",
                    frames=["StorFlt!ValidateIoctl+0x10", "StorFlt!DispatchIoctl+0x20", "nt!IofCallDriver+0x55",
                            "nt!NtDeviceIoControlFile+0x56", "nt!KiSystemServiceCopyEnd+0x25"])
    b.processor(4, current_thread=user, idle_thread=_idle_thread(b, idle))
    net = b.thread(idle, 0, "nt!KiIdleLoop", state="Running",
                   frames=["ndis!ndisInterruptDpc+0x19d", "nt!KiExecuteAllDpcs+0x2e7", "nt!KiRetireDpcList+0x1f4",
                           "nt!KiIdleLoop+0x9e"])
    b.processor(5, current_thread=net, idle_thread=net)
    b.running_dpc(5, "ndis!ndisInterruptDpc")
    b.hold_spin_lock(lock, reset)
    b.stack_word(reset, "StorFlt!ResetController", 0x28, lock)     # a local keeps &gRequestQueueLock
    b.spin_on_spin_lock(dpc, lock)
    b.spin_on_spin_lock(submit, lock)
    b.queue_dpc(1, "StorFlt!CompletionDpc")
    b.running_dpc(1, "StorFlt!CompletionDpc")
    b.dpc_watchdog(1, time_count=0x501, time_limit=0x500, watchdog_count=0x1a2, watchdog_period=0x4e20)
    b.bugcheck(0x133, 0, 0x501, 0x500, 0, cpu=1, irql=CLOCK_LEVEL)
    return b


def _thread_link(b, thread):
    return thread + b.off("_ETHREAD", "ThreadListEntry")


def corrupt_thread_list_loop():
    """The deadlock target whose System thread list loops: the last thread's Flink points
    back at the second thread instead of the list head."""
    b = eresource_deadlock(WIN81)
    system = _process_named(b, "System")
    links = _list_entries(b, system + b.off("_EPROCESS", "ThreadListHead"))
    b.u64(links[-1], links[1])
    b.comment = "corrupt: System's thread list loops back to its second entry"
    return b


def corrupt_null_flink():
    """The deadlock target whose resource list has a NULL Flink in FileResource1 (the
    seventh entry): FileResource2 is cut off the walk."""
    b = eresource_deadlock(WIN81)
    links = _list_entries(b, b.resource_head)
    b.u64(links[6], 0)
    b.comment = "corrupt: NULL Flink in the seventh entry of ExpSystemResourcesList"
    return b


def corrupt_waitblock_unreadable():
    """The deadlock target where FileDeletionThread's wait block list points at memory that
    is not in the image, and one background process cannot be read at all."""
    b = eresource_deadlock(WIN81)
    dele = b.thread_started_at("TestDriver!FileDeletionThread")
    b.put("_KTHREAD", dele, WaitBlockList=0xfffffa80deadb000)
    b.comment = "corrupt: FileDeletionThread's WaitBlockList points at unreadable memory"
    return b


def corrupt_unreadable_process():
    """The hang target where smss.exe's thread list head points at memory not in the image."""
    b = hang_no_cycle(WIN11)
    smss = _process_named(b, "smss.exe")
    b.u64(smss + b.off("_EPROCESS", "ThreadListHead"), 0xfffffa80badf0000)
    b.comment = "corrupt: smss.exe's thread list Flink points at unreadable memory"
    return b


def _process_named(b, name):
    for link in _list_entries(b, b.process_head):
        p = link - b.off("_EPROCESS", "ActiveProcessLinks")
        if b.mem.read(p + b.off("_EPROCESS", "ImageFileName"), 15).split(b"\0")[0] == name.encode():
            return p
    raise KeyError(name)


def _list_entries(b, head):
    out, a = [], int.from_bytes(b.mem.read(head, 8), "little")
    while a != head:
        out.append(a)
        a = int.from_bytes(b.mem.read(a, 8), "little")
    return out


def power_9f4_zteusbnet(build=WIN7):
    """Seed 003: bug check 0x9F subcode 4 (a power transition timed out, 0x258 s, waiting to
    synchronise with PnP).  The PnP-lock holder, a System worker, has waited 10 minutes on a
    NotificationEvent inside ZTEusbnet while handling a surprise-removal IRP (IRP_MJ_PNP /
    0x17) pending at \\Driver\\ZTEusbnet (NDMP14), above \\Driver\\usbccgp; it holds
    PiEngineLock exclusively and IopDeviceTreeLock shared."""
    b = ScenarioBuilder(build, comment="0x9F/4: ZTEusbnet keeps a PnP IRP while holding the PnP lock (seed 003)")
    system = b.process("System", 4)
    _background(b, system)
    for name, size in (("ZTEusbnet", 0x2e000), ("usbccgp", 0x20000), ("ndis", 0xf0000)):
        b.module(name, name + ".sys", size=size)
    zte, ccgp = b.driver_object("\\Driver\\ZTEusbnet"), b.driver_object("\\Driver\\usbccgp")
    fdo, pdo = b.device_stack([(zte, "NDMP14", 0x150), (ccgp, "000000a8", 0x400)])
    b.devnode(pdo, "USB\\VID_19D2&PID_0063&MI_04\\6&200b5242&0&0004", "ZTEusbnet")
    worker = b.thread(system, 0x48, "nt!ExpWorkerThread", wait_reason="Executive", waited_ticks=38463,
                      frames=WAIT_TOP + ["ZTEusbnet+0x35dd", "ZTEusbnet+0x4627",
                                         "ndis!NdisFDevicePnPEventNotify+0x89", "ndis!ndisPnPDispatch+0x843",
                                         "nt!IopSynchronousCall+0xe1", "nt!IopRemoveDevice+0x101",
                                         "nt!PnpSurpriseRemoveLockedDeviceNode+0x128",
                                         "nt!PnpDeleteLockedDeviceNode+0x37",
                                         "nt!PnpProcessQueryRemoveAndEject+0x6cf",
                                         "nt!PnpProcessTargetDeviceEvent+0x4c"] + WORKER)
    b.wait_on(worker, [b.event(notification=True)])
    b.acquire_resource(b.symbols["nt!PiEngineLock"], worker)
    b.acquire_resource(b.symbols["nt!IopDeviceTreeLock"], worker, exclusive=False)
    # IopRemoveDevice -> IopSynchronousCall: the IRP on the worker's IrpList, sent to the top of
    # the stack; ZTEusbnet waits inside its dispatch routine and never marks it pending (the
    # seed's !irp: "10 stacks 10 is current", control 0 at the current location)
    b.iop_synchronous_call(worker, pdo, 0x1b, 0x17, stack_size=10)
    triage = b.global_("nt!TRIAGE_9F_PNP", 0x30)
    b.bugcheck(0x9F, 4, 0x258, worker, triage)
    return b


IOCTL_ACME_FLUSH = 0x222004      # CTL_CODE(FILE_DEVICE_UNKNOWN, 0x801, METHOD_BUFFERED, FILE_ANY_ACCESS)
QUERY_REMOVE_HOLDER = [
    "AcmeCam!SendIoctlSynchronously+0x8e", "AcmeCam!PnpQueryRemove+0x3c", "AcmeCam!DispatchPnp+0xd2",
    "nt!IofCallDriver+0x55", "nt!IopSynchronousCall+0xe1", "nt!IopQueryRemoveDevice+0x4f",
    "nt!PnpQueryRemoveLockedDeviceNode+0x6a", "nt!PnpProcessQueryRemoveAndEject+0x2f2",
    "nt!PnpProcessTargetDeviceEvent+0xed", "nt!PnpDeviceEventWorker+0x2ce"] + WORKER


def _holder_waits_for_an_ioctl(b, system, pdo):
    """The PnP-lock holder, a System worker holding PiEngineLock and IopDeviceTreeLock, sends
    IRP_MN_QUERY_REMOVE_DEVICE (IopSynchronousCall) to AcmeCam's FDO above `pdo`; AcmeCam's
    handler builds an IOCTL for `pdo` (IoBuildDeviceIoControlRequest, its SynchronizationEvent
    and IO_STATUS_BLOCK in its own frame), calls IoCallDriver, and waits on the event; the
    PDO's driver marked the IOCTL pending and returned STATUS_PENDING.  (holder, the IOCTL)."""
    holder = b.thread(system, 0x74, "nt!ExpWorkerThread", wait_reason="Executive", waited_ticks=38463,
                      frames=WAIT_TOP + QUERY_REMOVE_HOLDER)
    b.acquire_resource(b.symbols["nt!PiEngineLock"], holder)
    b.acquire_resource(b.symbols["nt!IopDeviceTreeLock"], holder, exclusive=False)
    b.iop_synchronous_call(holder, pdo, 0x1b, 0x01)              # IRP_MN_QUERY_REMOVE_DEVICE, now at AcmeCam
    frame = b.frame_sp(holder, "AcmeCam!SendIoctlSynchronously")
    event = b.event(notification=False, address=frame + 0x28)   # KeInitializeEvent(&Event, SynchronizationEvent)
    ioctl = b.io_build_device_io_control_request(holder, IOCTL_ACME_FLUSH, pdo, event, frame + 0x18)
    b.io_call_driver(ioctl, pdo)
    b.io_mark_irp_pending(ioctl)                                 # the PDO's driver queues it: STATUS_PENDING
    b.wait_on(holder, [event])
    return holder, ioctl


def power_9f4_other_irp(build=WIN10):
    """Bug check 0x9F subcode 4: the PnP-lock holder, a System worker, sends
    IRP_MN_QUERY_REMOVE_DEVICE (IopSynchronousCall) to AcmeCam's FDO; AcmeCam's handler builds
    an IOCTL for the device below it (IoBuildDeviceIoControlRequest, its event and
    IO_STATUS_BLOCK in its own stack frame), calls IoCallDriver and waits on the event
    (KeWaitForSingleObject, Executive).  AcmeBus, whose PDO it reaches, marked the IOCTL
    pending, returned STATUS_PENDING and still holds it.  AcmeBus is the driver to look at,
    not AcmeCam."""
    b = ScenarioBuilder(build, comment="0x9F/4: the PnP-lock holder waits in AcmeCam for an IOCTL held by AcmeBus")
    system = b.process("System", 4)
    _background(b, system)
    for name, size in (("AcmeCam", 0x24000), ("AcmeBus", 0x38000)):
        b.module(name, name + ".sys", size=size)
    cam, bus = b.driver_object("\\Driver\\AcmeCam"), b.driver_object("\\Driver\\AcmeBus")
    fdo, pdo = b.device_stack([(cam, None, 0x280), (bus, "AcmeBusPdo-01", 0x120)])
    b.devnode(pdo, "ACMEBUS\\VID_1D6B&PID_0C01\\4&1f2c3b4d&0&1", "AcmeCam")
    holder, _ = _holder_waits_for_an_ioctl(b, system, pdo)
    b.bugcheck(0x9F, 4, 0x258, holder, b.global_("nt!TRIAGE_9F_PNP", 0x30))
    del fdo
    return b


IOCTL_ACME_HUB_RESET_PORT = 0x2a200b   # CTL_CODE(FILE_DEVICE_BUS_EXTENDER, 0x802, METHOD_NEITHER, FILE_ANY_ACCESS)


def power_9f4_irp_chain(build=WIN10):
    """Bug check 0x9F subcode 4, two IRPs deep: as in power_9f4_other_irp the PnP-lock holder
    waits in AcmeCam's query-remove handler for an IOCTL (Q) it sent to AcmeBus's PDO, which
    AcmeBus marked pending and queued for its worker.  AcmeBus's worker thread (System,
    AcmeBus!WorkerRoutine) serves it by sending an internal IOCTL (R) synchronously to the
    device below AcmeBus's FDO, a PDO of AcmeHub (IoBuildDeviceIoControlRequest with
    InternalDeviceIoControl TRUE, IoCallDriver, KeWaitForSingleObject on its event); AcmeHub
    marked R pending and keeps it.  AcmeHub is the driver to look at."""
    b = ScenarioBuilder(build, comment="0x9F/4: PnP-lock holder <- IOCTL at AcmeBus <- AcmeBus's worker "
                                       "<- internal IOCTL held by AcmeHub")
    system = b.process("System", 4)
    _background(b, system)
    for name, size in (("AcmeCam", 0x24000), ("AcmeBus", 0x38000), ("AcmeHub", 0x30000)):
        b.module(name, name + ".sys", size=size)
    cam, bus, hub = (b.driver_object("\\Driver\\" + n) for n in ("AcmeCam", "AcmeBus", "AcmeHub"))
    bus_fdo, hub_pdo = b.device_stack([(bus, None, 0x200), (hub, "AcmeHubPort-03", 0x100)])
    b.devnode(hub_pdo, "ACMEHUB\\ROOT_PORT\\3&2b1c7d0&0&3", "AcmeBus")
    fdo, pdo = b.device_stack([(cam, None, 0x280), (bus, "AcmeBusPdo-01", 0x120)])
    b.devnode(pdo, "ACMEBUS\\VID_1D6B&PID_0C01\\4&1f2c3b4d&0&1", "AcmeCam")
    holder, q = _holder_waits_for_an_ioctl(b, system, pdo)
    worker = b.thread(system, 0x98, "AcmeBus!WorkerRoutine", wait_reason="Executive", waited_ticks=38400,
                      frames=WAIT_TOP + ["AcmeBus!SendToHubSynchronously+0x71", "AcmeBus!ServiceFlush+0x2a",
                                         "AcmeBus!WorkerRoutine+0x5c"] + SYSTEM_START)
    wframe = b.frame_sp(worker, "AcmeBus!SendToHubSynchronously")
    wevent = b.event(notification=False, address=wframe + 0x30)
    r = b.io_build_device_io_control_request(worker, IOCTL_ACME_HUB_RESET_PORT, hub_pdo, wevent, wframe + 0x20,
                                             internal=True)
    b.io_call_driver(r, hub_pdo)
    b.io_mark_irp_pending(r)                                     # AcmeHub queues it and never completes it
    b.wait_on(worker, [wevent])
    b.bugcheck(0x9F, 4, 0x258, holder, b.global_("nt!TRIAGE_9F_PNP", 0x30))
    del fdo, bus_fdo
    return b


POWER_WORKER = ["nt!PopIrpWorker+0x1e3"] + SYSTEM_START


def _power_workers(b, system, tids):
    """The power manager's idle IRP workers (waiting for work on their queue event)."""
    for tid in tids:
        t = b.thread(system, tid, "nt!PopIrpWorker", wait_reason="Executive", waited_ticks=700,
                     frames=WAIT_TOP + POWER_WORKER)
        b.wait_on(t, [b.event(notification=False)])


def power_9f3_filter(build=WIN10):
    """Bug check 0x9F subcode 3 on Windows 10: a SET_POWER D3 IRP has been pending for ten
    minutes at the upper filter AcmeFlt, which sits above AcmeNic's FDO above pci's PDO; no
    thread works on it (the filter queued it and forgot it).  pci also holds a wait-wake
    IRP for the same device, as bus drivers do: expected, and pci must not be blamed."""
    b = ScenarioBuilder(build, comment="0x9F/3: SET_POWER D3 held by the upper filter AcmeFlt")
    system = b.process("System", 4)
    _background(b, system)
    _power_workers(b, system, (0x5c, 0x60))
    for name, size in (("AcmeFlt", 0x12000), ("AcmeNic", 0x80000), ("pci", 0x60000), ("ACPI", 0xb0000)):
        b.module(name, name + ".sys", size=size)
    flt, nic = b.driver_object("\\Driver\\AcmeFlt"), b.driver_object("\\Driver\\AcmeNic")
    pci, acpi = b.driver_object("\\Driver\\pci"), b.driver_object("\\Driver\\ACPI")
    bus_fdo, bus_pdo = b.device_stack([(pci, None, 0x300), (acpi, "00000019", 0x100)])
    bus = b.devnode(bus_pdo, "ACPI\\PNP0A08\\0", "pci")
    top, fdo, pdo = b.device_stack([(flt, None, 0x40), (nic, "NDMP3", 0x900), (pci, "NTPNP_PCI0012", 0x200)])
    b.devnode(pdo, "PCI\\VEN_8086&DEV_15B8&SUBSYS_86721043&REV_00\\3&11583659&0&FE", "AcmeNic", parent=bus)
    d3 = b.po_request_power_irp(pdo, 0x02, "DevicePowerState", "PowerDeviceD3")   # AcmeNic, policy owner
    b.io_mark_irp_pending(d3)                     # AcmeFlt queues it, returns STATUS_PENDING, forgets it
    b.pop_irp(d3, pdo, top, age_seconds=600.0)
    wake = b.po_request_power_irp(pdo, 0x00)
    b.io_pass_down(wake, fdo)                     # AcmeFlt passes it on
    b.io_pass_down(wake, pdo, completion="AcmeNic!WaitWakeDone")
    b.io_mark_irp_pending(wake)                   # pci holds it until the device signals wake
    b.pop_irp(wake, pdo, pdo, age_seconds=5400.0, target_device=top)
    b.bugcheck(0x9F, 3, pdo, b.global_("nt!TRIAGE_9F_POWER", 0x20), d3)
    del bus_fdo
    return b


def power_9f3_starved(build=WIN10):
    """Bug check 0x9F subcode 3: a SET_POWER D3 IRP pending at AcmeNic, whose power dispatch
    the power manager's IRP worker was running when it was preempted: the worker is Ready on
    processor 1 and has not run since, because processor 1 runs BusyDrv's thread, which polls
    its hardware at DISPATCH_LEVEL.  AcmeNic is the victim; BusyDrv is to look at."""
    b = ScenarioBuilder(build, comment="0x9F/3: the power worker starved of its processor by BusyDrv")
    system = b.process("System", 4)
    _background(b, system)
    for name, size in (("AcmeNic", 0x80000), ("pci", 0x60000), ("BusyDrv", 0x20000)):
        b.module(name, name + ".sys", size=size)
    nic, pci = b.driver_object("\\Driver\\AcmeNic"), b.driver_object("\\Driver\\pci")
    fdo, pdo = b.device_stack([(nic, "NDMP7", 0x900), (pci, "NTPNP_PCI0014", 0x200)])
    b.devnode(pdo, "PCI\\VEN_8086&DEV_15B8&SUBSYS_86721043&REV_00\\3&11583659&0&FE", "AcmeNic")
    d3 = b.po_request_power_irp(pdo, 0x02, "DevicePowerState", "PowerDeviceD3")
    b.io_mark_irp_pending(d3)
    b.pop_irp(d3, pdo, fdo, age_seconds=600.0)
    busy = b.thread(system, 0x3f0, "BusyDrv!PollThread", state="Running",
                    frames=["BusyDrv!PollHardware+0x61", "BusyDrv!PollThread+0x2c"] + SYSTEM_START)
    b.processor(1, current_thread=busy)
    worker = b.thread(system, 0x5c, "nt!PopIrpWorker", state="Ready",
                      frames=["AcmeNic!SetDevicePowerD3+0x130", "AcmeNic!DispatchPower+0x4e",
                              "nt!IofCallDriver+0x55", "nt!PopIrpWorker+0x1f6"] + SYSTEM_START)
    b.ready_thread(worker, 1, priority=13)
    b.bugcheck(0x9F, 3, pdo, b.global_("nt!TRIAGE_9F_POWER", 0x20), d3)
    return b


def power_9f3_mutex_chain(build=WIN11):
    """Bug check 0x9F subcode 3 on Windows 11: a system SET_POWER S4 IRP is pending at
    AcmeAudio's FDO.  The power IRP worker running AcmeAudio's dispatch waits on AcmeAudio's
    codec mutex, held by AcmeAudio's stream thread, which waits on OemHelper's mutex, held by
    OemHelper's poll thread -- which sleeps in a loop (KeDelayExecutionThread) and never
    lets go.  The driver to look at is OemHelper.sys, not the one holding the IRP."""
    b = ScenarioBuilder(build, comment="0x9F/3: the power worker waits on a mutex chain ending at a sleeper")
    system = b.process("System", 4)
    _background(b, system)
    _power_workers(b, system, (0x5c,))
    for name, size in (("AcmeAudio", 0x40000), ("HDAudBus", 0x30000), ("OemHelper", 0x9000)):
        b.module(name, name + ".sys", size=size)
    audio, hda = b.driver_object("\\Driver\\AcmeAudio"), b.driver_object("\\Driver\\HDAudBus")
    fdo, pdo = b.device_stack([(audio, None, 0x600), (hda, "00000047", 0x180)])
    b.devnode(pdo, "HDAUDIO\\FUNC_01&VEN_10EC&DEV_0295&SUBSYS_10431C8F&REV_1000\\4&2a6f8b05&0&0001", "AcmeAudio")
    s4 = b.po_request_power_irp(pdo, 0x02, "SystemPowerState", "PowerSystemHibernate",
                                completion="nt!PopSystemIrpCompletion")
    b.pop_irp(s4, pdo, fdo, age_seconds=600.0)    # AcmeAudio's dispatch waits; it never marks it pending
    worker = b.thread(system, 0x64, "nt!PopIrpWorker", wait_reason="Executive", waited_ticks=38400,
                      frames=["nt!KiSwapContext+0x76", "nt!KiSwapThread+0x500", "nt!KiCommitThreadWait+0x14f",
                              "nt!KeWaitForSingleObject+0x233", "AcmeAudio!AcquireCodecLock+0x2a",
                              "AcmeAudio!DispatchSetPower+0x88", "nt!IopPoHandleIrp+0x3b",
                              "nt!IofCallDriver+0x55"] + POWER_WORKER)
    stream = b.thread(system, 0x1c8, "AcmeAudio!StreamThread", wait_reason="Executive", waited_ticks=38600,
                      frames=["nt!KiSwapContext+0x76", "nt!KiSwapThread+0x500", "nt!KiCommitThreadWait+0x14f",
                              "nt!KeWaitForSingleObject+0x233", "AcmeAudio!SyncWithHelper+0x40",
                              "AcmeAudio!StreamThread+0x9c"] + SYSTEM_START)
    poll = b.thread(system, 0x1d4, "OemHelper!PollThread", wait_reason="DelayExecution", waited_ticks=2,
                    frames=["nt!KiSwapContext+0x76", "nt!KiSwapThread+0x500", "nt!KiCommitThreadWait+0x14f",
                            "nt!KeDelayExecutionThread+0x122", "OemHelper!WaitForDeviceReady+0x5c",
                            "OemHelper!PollThread+0x2e"] + SYSTEM_START)
    codec = b.mutant(owner=stream, address=b.global_("AcmeAudio!gCodecMutex", b.size("_KMUTANT")))
    helper = b.mutant(owner=poll, address=b.global_("OemHelper!gHelperMutex", b.size("_KMUTANT")))
    b.wait_on(worker, [codec])
    b.wait_on(stream, [helper])
    b.sleep(poll)
    b.bugcheck(0x9F, 3, pdo, b.global_("nt!TRIAGE_9F_POWER", 0x20), s4)
    return b


def power_clean(build=WIN81):
    """A healthy Windows 8.1 machine, no bug check: the USB mouse's bus driver holds a
    wait-wake IRP (as it should), a D0 IRP has been at the mouse's function driver for two
    seconds, and one power IRP is allocated but at no driver.  Nothing is stuck."""
    b = ScenarioBuilder(build, comment="healthy: a wait-wake IRP, a two-second D0 IRP, nothing stuck")
    system = b.process("System", 4)
    _background(b, system)
    _power_workers(b, system, (0x5c, 0x60))
    for name, size in (("mouhid", 0x9000), ("HidUsb", 0xb000), ("USBHUB3", 0x90000)):
        b.module(name, name + ".sys", size=size)
    mou, hid, hub = (b.driver_object("\\Driver\\" + n) for n in ("mouhid", "HidUsb", "USBHUB3"))
    hid_fdo, hid_pdo = b.device_stack([(hid, None, 0x100), (hub, "USBPDO-3", 0x400)])
    hid_node = b.devnode(hid_pdo, "USB\\VID_046D&PID_C077\\5&3a1e0e0c&0&2", "HidUsb")
    mou_fdo, mou_pdo = b.device_stack([(mou, None, 0x80), (hid, "00000066", 0x40)])
    b.devnode(mou_pdo, "HID\\VID_046D&PID_C077\\6&1b8b2a1c&0&0000", "mouhid", parent=hid_node)
    wake = b.po_request_power_irp(hid_pdo, 0x00)                  # HidUsb, policy owner
    b.io_pass_down(wake, hid_pdo, completion="HidUsb!WaitWakeDone")
    b.io_mark_irp_pending(wake)                                    # USBHUB3 holds it: expected
    b.pop_irp(wake, hid_pdo, hid_pdo, age_seconds=3600.0, target_device=hid_fdo)
    d0 = b.po_request_power_irp(mou_pdo, 0x02, "DevicePowerState", "PowerDeviceD0")
    b.io_mark_irp_pending(d0)                                      # mouhid waits for its device
    b.pop_irp(d0, mou_pdo, mou_fdo, age_seconds=2.0)
    done = b.io_allocate_irp(2)       # allocated, not yet sent (before PoCallDriver)
    b.pop_irp(done, mou_pdo, mou_fdo, age_seconds=0.5)
    return b


def power_9f500(build=WIN10):
    """Bug check 0x9F subcode 0x500 on Windows 10: a device object completed the IRP of a
    system power request without calling PoStartNextPowerIrp.  Microsoft's 0x9F page: arg2
    reserved, arg3 the target device's device object (here the top of the stack, AcmeFlt's
    filter), arg4 the device object -- AcmeNic's FDO, the one to blame."""
    b = ScenarioBuilder(build, comment="0x9F/0x500: AcmeNic's FDO completed a system power IRP without "
                                       "PoStartNextPowerIrp")
    system = b.process("System", 4)
    _background(b, system)
    for name, size in (("AcmeFlt", 0x12000), ("AcmeNic", 0x80000), ("pci", 0x60000)):
        b.module(name, name + ".sys", size=size)
    flt, nic, pci = (b.driver_object("\\Driver\\" + n) for n in ("AcmeFlt", "AcmeNic", "pci"))
    top, fdo, pdo = b.device_stack([(flt, None, 0x40), (nic, "NDMP3", 0x900), (pci, "NTPNP_PCI0012", 0x200)])
    b.devnode(pdo, "PCI\\VEN_8086&DEV_15B8&SUBSYS_86721043&REV_00\\3&11583659&0&FE", "AcmeNic")
    b.bugcheck(0x9F, 0x500, 0, top, fdo)
    return b


def corrupt_power_lists():
    """The 0x9F/3 filter target with its power lists broken: a third PopIrpList record whose
    Irp points at unreadable memory and whose Flink points at itself, and a device node
    whose Sibling points back at itself."""
    b = power_9f3_filter(WIN10)
    lay = b.layouts.layout("_POP_IRP_DATA")
    bad = b.alloc(lay.size)
    b.put("_POP_IRP_DATA", bad, Irp=0xfffffa80deadb000, Pdo=0, MinorFunction=2)
    b.list_insert_tail(b.pop_irp_head, bad + lay.offset("Link"))
    b.u64(bad + lay.offset("Link"), bad + lay.offset("Link"))          # Flink: itself
    last = b._u64(b.root_devnode + b.off("_DEVICE_NODE", "LastChild"))
    b.put("_DEVICE_NODE", last, Sibling=last)
    b.comment = "corrupt: a PopIrpList record with an unreadable IRP and a self-loop; a devnode sibling self-loop"
    return b


CLOCK_LEVEL = 13          # x64 (wdm.h: #define CLOCK_LEVEL 13)
IDLE_LOOP = ["nt!KiIdleLoop+0x5a"]
SEED_133_STACK = [
    "nt!KeBugCheckEx", "nt! ?? ::FNODOBFM::`string'+0x18b12", "nt!KeClockInterruptNotify+0x95",
    "hal!HalpTimerClockIpiRoutine+0x15", "nt!KiCallInterruptServiceRoutine+0xa3",
    "nt!KiInterruptSubDispatchNoLockNoEtw+0xea", "nt!KiInterruptDispatchNoLockNoEtw+0xfb",
    "nt!KeAcquireSpinLockRaiseToDpc+0x13", "athwbx+0x161751", "athwbx+0x16131d", "athwbx+0x11cc42",
    "athwbx+0xef472", "athwbx+0x27d29f", "athwbx+0x24279e", "ndis!ndisInterruptDpc+0x269ce",
    "nt!KiExecuteAllDpcs+0x1b0", "nt!KiRetireDpcList+0xdb", "nt!KiIdleLoop+0x5a"]


def _machine(build, comment):
    """A machine with processors to lay out: the System process and its background threads,
    and the Idle process (on no process list) for the processors' idle threads:
    (builder, System, smss.exe, Idle)."""
    b = ScenarioBuilder(build, comment=comment)
    system = b.process("System", 4)
    smss = _background(b, system)
    idle = b.process("Idle", 0, listed=False)
    return b, system, smss, idle


def _idle_cpu(b, idle, index, frames=IDLE_LOOP):
    """Processor `index` in its idle loop (its idle thread current), or running `frames` there."""
    t = b.thread(idle, 0, "nt!KiIdleLoop", state="Running", frames=frames)
    b.processor(index, current_thread=t, idle_thread=t)
    return t


def dpc_133_athwbx(build=WIN81):
    """Seed 003's second case: bug check 0x133 arg1 0 (0x501 ticks against 0x500).  CPU 3,
    in its idle loop, drains its DPC queue: ndis!ndisInterruptDpc calls into athwbx, which
    spins in KeAcquireSpinLockRaiseToDpc until the watchdog's clock interrupt fires.  CPU 3's
    queue still holds ndis!ndisMTimerObjectDpc, nt!PpmPerfAction and
    nt!PopExecuteProcessorCallback (normal) and nt!KiDpcWatchdog (threaded).  CPU 1 runs an
    athwbx system thread; CPUs 0 and 2 are idle."""
    b, system, _, idle = _machine(build, "0x133/0: athwbx spins on a spin lock inside ndis's interrupt DPC (seed 003)")
    b.module("athwbx", "athwbx.sys", size=0x300000)
    b.module("ndis", "ndis.sys", size=0x100000)
    worker = b.thread(system, 0x74, "athwbx+0x1c2a0", state="Running",
                      frames=["athwbx+0x1c2a4", "athwbx+0x15f210", "athwbx+0x15e0c8"] + SYSTEM_START)
    b.processor(1, current_thread=worker, idle_thread=_idle_thread(b, idle))
    _idle_cpu(b, idle, 2)
    _idle_cpu(b, idle, 3, SEED_133_STACK)
    for routine in ("ndis!ndisMTimerObjectDpc", "nt!PpmPerfAction", "nt!PopExecuteProcessorCallback"):
        b.queue_dpc(3, routine)
    b.queue_dpc(3, "nt!KiDpcWatchdog", threaded=True, importance=2)
    b.running_dpc(3, "ndis!ndisInterruptDpc")
    b.dpc_watchdog(3, time_count=0x501, time_limit=0x500, watchdog_count=0x1a2, watchdog_period=0x4e20)
    # the watchdog fires in CPU 3's clock interrupt (hal!HalpTimerClockIpiRoutine on the seed's
    # stack), so the IRQL saved for it is CLOCK_LEVEL (13 on x64, wdm.h)
    b.bugcheck(0x133, 0, 0x501, 0x500, 0, cpu=3, irql=CLOCK_LEVEL)
    return b


def _idle_thread(b, idle):
    return b.thread(idle, 0, "nt!KiIdleLoop", state="Ready", frames=IDLE_LOOP)


def dpc_133_cumulative(build=WIN11):
    """Bug check 0x133 arg1 1 on Windows 11: too long at DISPATCH_LEVEL, cumulatively.  CPU 0
    drains a deep queue of BusyNet's receive DPCs; CPU 1 runs BusyNet's transmit-completion DPC
    from a user thread; CPU 2 runs explorer; CPU 3 is idle."""
    b, system, smss, idle = _machine(build, "0x133/1: BusyNet's DPCs keep the processors at DISPATCH_LEVEL")
    explorer = b.process("explorer.exe", 0xf3c)
    b.module("BusyNet", "BusyNet.sys", size=0x60000)
    clock = ["nt!KeBugCheckEx", "nt!KeAccumulateTicks+0x1846d4", "nt!KeClockInterruptNotify+0x8b6",
             "hal!HalpTimerClockInterrupt+0x10", "nt!KiCallInterruptServiceRoutine+0xa5",
             "nt!KiInterruptSubDispatchNoLockNoEtw+0xfa", "nt!KiInterruptDispatchNoLockNoEtw+0x37"]
    # CPU 0 (the background's) runs its idle thread, which drains BusyNet's receive DPCs
    cpu0 = b.thread(idle, 0, "nt!KiIdleLoop", state="Running",
                    frames=clock + ["BusyNet!RxProcessRing+0x3c1", "BusyNet!RxDpc+0x7f", "nt!KiExecuteAllDpcs+0x2e7",
                                    "nt!KiRetireDpcList+0x1f4", "nt!KiIdleLoop+0x9e"])
    b.set_current(0, cpu0, idle_thread=cpu0)
    for _ in range(6):
        b.queue_dpc(0, "BusyNet!RxDpc")
    b.queue_dpc(0, "nt!KiTimerExpirationDpc", importance=2)
    b.queue_dpc(0, "nt!KiDpcWatchdog", threaded=True, importance=2)
    b.running_dpc(0, "BusyNet!RxDpc")
    b.dpc_watchdog(0, time_count=0x90, time_limit=0x500, watchdog_count=0x1e01, watchdog_period=0x1e00)
    user = b.thread(smss, 0x1a0, "ntdll!RtlUserThreadStart", state="Running",
                    frames=["BusyNet!TxCompleteDpc+0x52", "nt!KiExecuteAllDpcs+0x2e7", "nt!KiRetireDpcList+0x1f4",
                            "nt!KiDispatchInterruptContinue", "nt!KiDpcInterruptBypass+0x25",
                            "nt!KiInterruptDispatchNoLockNoEtw+0xb1", "ntdll!NtWaitForSingleObject+0x14"])
    b.processor(1, current_thread=user, idle_thread=_idle_thread(b, idle))
    b.queue_dpc(1, "BusyNet!TxCompleteDpc")
    b.queue_dpc(1, "BusyNet!TxCompleteDpc")
    b.running_dpc(1, "BusyNet!TxCompleteDpc")
    b.dpc_watchdog(1, time_count=0x40, time_limit=0x500, watchdog_count=0x1c00, watchdog_period=0x1e00)
    shell = b.thread(explorer, 0x1b20, "ntdll!RtlUserThreadStart", state="Running",
                     frames=["win32kfull!xxxInternalDoPaint+0x82", "win32kfull!NtUserCallNoParam+0x70"])
    b.processor(2, current_thread=shell, idle_thread=_idle_thread(b, idle))
    _idle_cpu(b, idle, 3)
    b.bugcheck(0x133, 1, 0x1e00, b.global_("nt!KiDPCTimeoutTelemetry", 8), 0, cpu=0, irql=CLOCK_LEVEL)
    return b


def timerres_win81(build=WIN81):
    """Seed 003's timer-resolution list: svchost.exe is its only entry, with
    RequestedTimerResolution 0 and SmallestTimerResolution 0x2710 -- it asked for 1 ms and
    has stopped asking (NtSetTimerResolution(.., FALSE) zeroes Requested and leaves Smallest and
    the list entry).  System, smss and explorer ask nothing.  The seed does not show the clock;
    here a driver's ExSetTimerResolution(1 ms) holds it at 1 ms (our choice, not the seed's
    finding: the seed's author suspected the network driver), so the clock's holder is not on
    the list and svchost.exe must not be blamed."""
    b = ScenarioBuilder(build, comment="timer resolution: svchost.exe asked for 1 ms and stopped; "
                                       "a driver holds the clock at 1 ms (seed 003's list)")
    system = b.process("System", 4)
    _background(b, system)
    b.process("explorer.exe", 0xa8c)
    svchost = b.process("svchost.exe", 0x3a8)
    b.set_timer_resolution(svchost, 0x2710)
    b.ex_set_timer_resolution(0x2710)
    b.set_timer_resolution(svchost, 0, set=False)
    return b


def timerres_win10(build=WIN10):
    """Windows 10: browsers and a music player ask for 1 ms, a screen recorder and an audio
    service for 0.5 ms (so the clock runs at 0.5 ms, set by both); msedge.exe asked for 1 ms
    and stopped (a stale entry).  Each request is NtSetTimerResolution as the kernel does it."""
    b = ScenarioBuilder(build, comment="timer resolution: 1 ms and 0.5 ms requests, one stale")
    system = b.process("System", 4)
    _background(b, system)
    procs = {name: b.process(name, pid) for name, pid in (
        ("chrome.exe", 0x1f30), ("Spotify.exe", 0x2a4c), ("obs64.exe", 0x3320), ("msedge.exe", 0x1b54),
        ("RtkAudUService64.exe", 0x0f70))}
    for name, interval in (("chrome.exe", 0x2710), ("msedge.exe", 0x2710), ("Spotify.exe", 0x2710),
                           ("RtkAudUService64.exe", 0x1388), ("obs64.exe", 0x1388)):
        b.set_timer_resolution(procs[name], interval)
    b.set_timer_resolution(procs["msedge.exe"], 0, set=False)
    return b


def timerres_stale_and_live(build=WIN10):
    """game.exe asked for 0.5 ms and stopped (stale: Smallest 0x1388, Requested 0); player.exe
    asks for 1 ms now and sets the clock at 1 ms."""
    b = ScenarioBuilder(build, comment="timer resolution: a stale 0.5 ms request, a live 1 ms one")
    b.process("System", 4)
    game, player = b.process("game.exe", 0x1000), b.process("player.exe", 0x2000)
    b.set_timer_resolution(game, 0x1388)
    b.set_timer_resolution(player, 0x2710)
    b.set_timer_resolution(game, 0, set=False)
    return b


def timerres_driver_finer(build=WIN10):
    """player.exe asks for 1 ms; a driver's ExSetTimerResolution asks for 0.5 ms, finer than
    every process: the drivers' request sets the clock."""
    b = ScenarioBuilder(build, comment="timer resolution: a driver asks finer than every process")
    b.process("System", 4)
    b.set_timer_resolution(b.process("player.exe", 0x2000), 0x2710)
    b.ex_set_timer_resolution(0x1388)
    return b


def timerres_coarser_ignored(build=WIN11):
    """browser.exe asks for 1 ms, then the kernel marks its request ignored
    (Flags3.TimerResolutionIgnore: a minimised or occluded window on Windows 11) and recomputes:
    the clock goes back to its coarsest, coarser than the live request.  Builds whose _EPROCESS
    has TimerResolutionIgnore only."""
    b = ScenarioBuilder(build, comment="timer resolution: a live 1 ms request the kernel ignores")
    b.process("System", 4)
    browser = b.process("browser.exe", 0x3000)
    b.set_timer_resolution(browser, 0x2710)
    b.ignore_timer_resolution(browser)
    return b


def corrupt_dpc_lists():
    """The seed 0x133 case on Windows 7 (doubly linked DPC queues) with CPU 3's second normal
    DPC's Flink pointing at unreadable memory, and a timer-resolution entry whose Flink
    points at itself."""
    b = dpc_133_athwbx(WIN7)
    head = b._dpc_data(3, False) + b.off("_KDPC_DATA", "DpcListHead")
    second = _list_entries(b, head)[1]
    b.u64(second, 0xfffffa80deadb000)
    svc = b.process("svchost.exe", 0x3a8)
    b.timer_resolution(svc, requested=0x2710, smallest=0x2710)
    link = svc + b.off("_EPROCESS", "TimerResolutionLink")
    b.u64(link, link)
    b.comment = "corrupt: an unreadable DPC Flink on CPU 3; a timer-resolution entry that loops to itself"
    return b


def lint_unload_during_init(build=WIN7, legacy=False):
    """Seed 002, on Windows 7 (Microsoft fixed the race in Windows 8, per the seed): IsoFlt's
    entry point still runs on a System worker (nt!IopLoadUnloadDriver -> nt!IopLoadDriver ->
    IsoFlt!GsDriverEntry -> DriverEntry, creating the threads of its work queues) while another
    System worker unloads it.  As the seed has it, a minifilter: fltmgr!FltpSyncOpWorker ->
    FltpDoUnloadFilter calls IsoFlt's FilterUnloadCallback, which touches a queue DriverEntry
    has not made yet and faults -- bug check 0x7E SYSTEM_THREAD_EXCEPTION_NOT_HANDLED, both
    threads Running (CPUs 2 and 1).  `legacy`: a legacy driver instead, whose DriverUnload
    (stored by DriverEntry) the I/O manager's worker calls (ReactOS io/iomgr/driver.c
    IopLoadUnloadDriverWorker: `LoadParams->DriverObject->DriverUnload(...)`, queued by
    IopUnloadDriver for sc.exe's NtUnloadDriver, which waits); the unload waits for the read
    queue to stop, an event no queue thread exists yet to set: a hang, no bug check."""
    b, system, _, idle = _machine(build, "seed 002: a driver's unload runs while its DriverEntry still runs (%s%s)"
                                  % (build, ", legacy unload" if legacy else ""))
    sc = b.process("sc.exe", 0x1d4c)
    b.module("IsoFlt", "IsoFlt.sys", size=0x40000)
    b.module("fltmgr", "fltmgr.sys", size=0x60000)
    drv = b.load_driver_object("\\FileSystem\\IsoFlt", "IsoFlt", "IsoFlt!GsDriverEntry")
    b.driver_entry_sets(drv, unload="IsoFlt!IsoUnload" if legacy else None,
                        major={0x0: "IsoFlt!IsoCreate", 0x2: "IsoFlt!IsoClose", 0xe: "IsoFlt!IsoDeviceControl"})
    init = b.thread(system, 0x44, "nt!ExpWorkerThread", state="Running",
                    frames=["nt!ObLogSecurityDescriptor+0x50", "nt!SeDefaultObjectMethod+0x57",
                            "nt!ObpAssignSecurity+0xc7", "nt!ObInsertObjectEx+0x1e2", "nt!PspInsertThread+0x2f3",
                            "nt!PspCreateThread+0x246", "nt!PsCreateSystemThread+0x125",
                            "IsoFlt!SetupReadWorkQueue+0xe2", "IsoFlt!SetupWorkerQueues+0x22c",
                            "IsoFlt!DriverEntry+0x72", "IsoFlt!GsDriverEntry+0x20", "nt!IopLoadDriver+0xa07",
                            "nt!IopLoadUnloadDriver+0x55"] + WORKER)
    b.processor(2, current_thread=init, idle_thread=_idle_thread(b, idle))
    b.stack_word(init, "nt!IopLoadDriver", 0x30, drv)
    if not legacy:
        fault = b.code("IsoFlt!StopWorkerQueues+0x14")
        unload = b.thread(system, 0x38, "nt!ExpWorkerThread", state="Running",
                          frames=["nt!KeBugCheckEx", "nt!PspUnhandledExceptionInSystemThread+0x24",
                                  "nt!_C_specific_handler+0x8c", "nt!RtlpExecuteHandlerForException+0xd",
                                  "nt!RtlDispatchException+0x415", "nt!KiDispatchException+0x135",
                                  "nt!KiExceptionDispatch+0xc2", "nt!KiPageFault+0x23a",
                                  "IsoFlt!StopWorkerQueues+0x14", "IsoFlt!UnloadCallback+0xd3",
                                  "fltmgr!FltpDoUnloadFilter+0xf9", "fltmgr!FltpSyncOpWorker+0x2d"] + WORKER)
        b.processor(1, current_thread=unload, idle_thread=_idle_thread(b, idle))
        # 0x7E: parameter 1 the exception code, 2 where it happened, 3 the exception record,
        # 4 the context record (MS docs, Bug Check 0x7E); the faulting processor saved the IRQL
        # it ran at, PASSIVE_LEVEL for a worker thread
        b.bugcheck(0x7E, 0xC0000005, fault, b.alloc(0x98), b.alloc(0x4d0), cpu=1, irql=0)
        return b
    _idle_cpu(b, idle, 1)                   # processors are numbered without gaps
    stopped = b.event(notification=True, address=b.global_("IsoFlt!gReadQueueStopped", b.size("_KEVENT")))
    unload = b.thread(system, 0x38, "nt!ExpWorkerThread", wait_reason="Executive", waited_ticks=0x300,
                      frames=WAIT_TOP + ["IsoFlt!StopWorkerQueues+0x5c", "IsoFlt!IsoUnload+0xd3",
                                         "nt!IopLoadUnloadDriver+0x2b5"] + WORKER)
    b.wait_on(unload, [stopped], "Executive")
    b.stack_word(unload, "nt!IopLoadUnloadDriver", 0x30, drv)
    # sc.exe's NtUnloadDriver queued the unload to that worker and waits for it (IopUnloadDriver)
    caller = b.thread(sc, 0x1d50, "ntdll!RtlUserThreadStart", wait_reason="Executive", waited_ticks=0x300,
                      frames=WAIT_TOP + ["nt!IopUnloadDriver+0x29a", "nt!NtUnloadDriver+0x11",
                                         "nt!KiSystemServiceCopyEnd+0x13"])
    b.wait_on(caller, [b.event(notification=False)], "Executive")
    return b


def lint_wait_at_dispatch(build=WIN10):
    """Seed 004's second error: AcmeUsb's EvtIoRead runs at DISPATCH_LEVEL (its queue's
    synchronisation scope holds a spin lock) and sends a request synchronously, so KMDF waits
    for it with KeWaitForSingleObject: the thread is Waiting, WaitIrql 2.  Decoys: a worker
    waiting at APC_LEVEL (inside a guarded region's fast mutex: legal) and the usual workers
    at PASSIVE_LEVEL.  Nothing else holds anything: no cycle, no chain."""
    b = ScenarioBuilder(build, comment="seed 004: a KMDF driver waits at DISPATCH_LEVEL (%s)" % build)
    system = b.process("System", 4)
    _background(b, system)
    svc = b.process("AcmeSvc.exe", 0x9c4)
    b.module("Wdf01000", "Wdf01000.sys", size=0xd0000)
    b.module("AcmeUsb", "AcmeUsb.sys", size=0x20000)
    b.module("AcmeAux", "AcmeAux.sys", size=0x10000)
    done = b.event(notification=False)
    reader = b.thread(svc, 0xa10, "ntdll!RtlUserThreadStart", wait_reason="Executive", waited_ticks=0x2000,
                      frames=WAIT_TOP + ["Wdf01000!FxCREvent::EnterCRAndWaitAndLeave+0x26",
                                         "Wdf01000!FxRequestBase::Send+0x1c3", "Wdf01000!imp_WdfRequestSend+0x2b0",
                                         "AcmeUsb!EvtIoRead+0x5c", "Wdf01000!FxIoQueueIoRead::Invoke+0x42",
                                         "Wdf01000!FxIoQueue::DispatchRequestToDriver+0x1ad",
                                         "Wdf01000!FxIoQueue::DispatchEvents+0x4f2",
                                         "Wdf01000!FxPkgIo::DispatchStep1+0x53d", "nt!IofCallDriver+0x55",
                                         "nt!IopSynchronousServiceTail+0x1a8", "nt!NtReadFile+0x59d",
                                         "nt!KiSystemServiceCopyEnd+0x25"])
    b.wait_on(reader, [done], "Executive", irql=2)
    aux = b.thread(system, 0x2a0, "AcmeAux!ConfigWorker", wait_reason="Executive", waited_ticks=0x90,
                   frames=WAIT_TOP + ["AcmeAux!ReadConfig+0x31", "AcmeAux!ConfigWorker+0x18"] + SYSTEM_START)
    b.wait_on(aux, [b.event(notification=True)], "Executive", irql=1)
    return b


CLOCK_101 = ["nt!KeBugCheckEx", "nt!KeAccumulateTicks+0x1c8b0", "nt!KeClockInterruptNotify+0x98f",
             "hal!HalpTimerClockInterrupt+0xf7", "nt!KiCallInterruptServiceRoutine+0xa5",
             "nt!KiInterruptSubDispatchNoLockNoEtw+0xfa", "nt!KiInterruptDispatchNoLockNoEtw+0x37"]


def bugcheck_101_hung_cpu(build=WIN10):
    """Bug check 0x101 on Windows 10: CPU 2 took no clock interrupt for 0x18 ticks (arg1; arg3
    its PRCB, arg4 its index).  CPU 2's idle thread runs NicDrv's transmit-completion DPC, which
    turned interrupts off to touch its ring and spins in KxWaitForSpinLockAndAcquire for
    NicDrv's adapter lock; CPU 3 runs NicDrv's reset worker, which took that lock and polls a
    controller that does not answer.  CPU 0 took the clock interrupt and bug checked from its
    idle loop; CPU 1 runs an explorer thread at PASSIVE_LEVEL."""
    b, system, _, idle = _machine(build, "0x101: NicDrv's DPC spins with interrupts off for a lock its reset "
                                         "worker holds (%s)" % build)
    explorer = b.process("explorer.exe", 0xf3c)
    b.module("NicDrv", "NicDrv.sys", size=0x50000)
    lock = b.spin_lock(name="NicDrv!gAdapterLock")
    cpu0 = b.thread(idle, 0, "nt!KiIdleLoop", state="Running", frames=CLOCK_101 + ["nt!KiIdleLoop+0x9e"])
    b.set_current(0, cpu0, idle_thread=cpu0)
    shell = b.thread(explorer, 0x1b20, "ntdll!RtlUserThreadStart", state="Running",
                     frames=["win32kfull!xxxInternalDoPaint+0x82", "win32kfull!NtUserCallNoParam+0x70"])
    b.processor(1, current_thread=shell, idle_thread=_idle_thread(b, idle))
    dpc = b.thread(idle, 0, "nt!KiIdleLoop", state="Running",
                   frames=["nt!KxWaitForSpinLockAndAcquire+0x2c", "nt!KeAcquireSpinLockAtDpcLevel+0x5c",
                           "NicDrv!TxReapRing+0x3a", "NicDrv!TxCompleteDpc+0x66", "nt!KiExecuteAllDpcs+0x2e7",
                           "nt!KiRetireDpcList+0x1f4", "nt!KiIdleLoop+0x9e"])
    hung = b.processor(2, current_thread=dpc, idle_thread=dpc)
    reset = b.thread(system, 0x320, "NicDrv!ResetWorker", state="Running",
                     frames=["nt!KeStallExecutionProcessor+0x9d", "NicDrv!WaitPhyReady+0x52",
                             "NicDrv!ResetController+0x1c0", "NicDrv!ResetWorker+0x4b"] + SYSTEM_START)
    b.processor(3, current_thread=reset, idle_thread=_idle_thread(b, idle))
    b.hold_spin_lock(lock, reset)
    b.stack_word(reset, "NicDrv!ResetController", 0x28, lock)     # a local keeps &gAdapterLock
    b.spin_on_spin_lock(dpc, lock)
    b.queue_dpc(2, "NicDrv!TxCompleteDpc")
    b.running_dpc(2, "NicDrv!TxCompleteDpc")
    # CPU 0 bug checks from its clock interrupt (KeAccumulateTicks on its stack): CLOCK_LEVEL saved
    b.bugcheck(0x101, 0x18, 0, hung, 2, cpu=0, irql=CLOCK_LEVEL)
    return b


def bugcheck_d1_lock_holder(build=WIN10):
    """Bug check 0xD1 on Windows 10: AcmeNet's receive DPC on CPU 1 took its receive-queue lock
    (an in-stack queued spin lock, the handle in ReceiveIndicate's frame), then ParsePacket
    read a pageable buffer at DISPATCH_LEVEL: arg1 the address, arg2 2, arg3 0 (read), arg4
    AcmeNet!ParsePacket+0x4a.  CPU 2's send worker spins in the lock's queue behind it.
    CPU 3 is idle."""
    b, system, _, idle = _machine(build, "0xD1: AcmeNet faults at DISPATCH_LEVEL holding a queued spin lock (%s)" % build)
    b.module("AcmeNet", "AcmeNet.sys", size=0x40000)
    rxlock = b.spin_lock(name="AcmeNet!gRxQueueLock")
    fault = b.thread(idle, 0, "nt!KiIdleLoop", state="Running",
                     frames=["nt!KeBugCheckEx", "nt!KiBugCheckDispatch+0x69", "nt!KiPageFault+0x469",
                             "AcmeNet!ParsePacket+0x4a", "AcmeNet!ReceiveIndicate+0x9c", "AcmeNet!RxDpc+0x31",
                             "nt!KiExecuteAllDpcs+0x2e7", "nt!KiRetireDpcList+0x1f4", "nt!KiIdleLoop+0x9e"])
    b.processor(1, current_thread=fault, idle_thread=fault)
    send = b.thread(system, 0x2f0, "AcmeNet!SendWorker", state="Running",
                    frames=QUEUED_SPIN + ["AcmeNet!SendQueued+0x3b", "AcmeNet!SendWorker+0x2c"] + SYSTEM_START)
    b.processor(2, current_thread=send, idle_thread=_idle_thread(b, idle))
    _idle_cpu(b, idle, 3)
    b.acquire_in_stack_queued_spin_lock(fault, rxlock, frame="AcmeNet!ReceiveIndicate", irql=2)
    b.acquire_in_stack_queued_spin_lock(send, rxlock)
    b.queue_dpc(1, "AcmeNet!RxDpc")
    b.running_dpc(1, "AcmeNet!RxDpc")
    # CPU 1 bug checks from its page fault at DISPATCH_LEVEL: parameter 2, and the IRQL it saves
    b.bugcheck(0xD1, 0xffffb20c4a1f3010, 2, 0, b.code("AcmeNet!ParsePacket+0x4a"), cpu=1, irql=2)
    return b


SHIPPED = {
    "eresource_deadlock": lambda: eresource_deadlock(WIN81),
    "livedump_1cc_eresource": lambda: livedump_1cc_eresource(WIN11),
    "eresource_deadlock_win7": lambda: eresource_deadlock(WIN7),
    "eresource_deadlock_win10": lambda: eresource_deadlock(WIN10),
    "hang_no_cycle": hang_no_cycle,
    "self_deadlock_fastmutex": self_deadlock_fastmutex,
    "power_9f3_starved": power_9f3_starved,
    "pushlock_shared_waiters": lambda: pushlock_shared_waiters(WIN10),
    "pushlock_shared_waiters_win81": lambda: pushlock_shared_waiters(WIN81),
    "pushlock_recursive": lambda: pushlock_recursive(WIN10),
    "pushlock_recursive_win11": lambda: pushlock_recursive(WIN11),
    "selfwait_process_notify": lambda: selfwait_process_notify(WIN10),
    "selfwait_process_notify_win7": lambda: selfwait_process_notify(WIN7),
    "crossobject_event": lambda: crossobject_event(WIN10),
    "crossobject_event_win81": lambda: crossobject_event(WIN81),
    "spinlock_queued_abba": lambda: spinlock_queued_abba(WIN10),
    "spinlock_queued_abba_win7": lambda: spinlock_queued_abba(WIN7),
    "spinlock_plain_spinners": lambda: spinlock_plain_spinners(WIN10),
    "spinlock_plain_spinners_win11": lambda: spinlock_plain_spinners(WIN11),
    "corrupt_thread_list_loop": corrupt_thread_list_loop,
    "corrupt_null_flink": corrupt_null_flink,
    "corrupt_waitblock_unreadable": corrupt_waitblock_unreadable,
    "corrupt_unreadable_process": corrupt_unreadable_process,
    "power_9f4_zteusbnet": power_9f4_zteusbnet,
    "power_9f4_other_irp": lambda: power_9f4_other_irp(WIN10),
    "power_9f4_other_irp_win7": lambda: power_9f4_other_irp(WIN7),
    "power_9f4_irp_chain": lambda: power_9f4_irp_chain(WIN10),
    "power_9f3_filter": power_9f3_filter,
    "power_9f3_mutex_chain": power_9f3_mutex_chain,
    "power_clean": power_clean,
    "corrupt_power_lists": corrupt_power_lists,
    "dpc_133_athwbx": dpc_133_athwbx,
    "dpc_133_cumulative": dpc_133_cumulative,
    "timerres_win81": timerres_win81,
    "timerres_win10": timerres_win10,
    "corrupt_dpc_lists": corrupt_dpc_lists,
    "lint_unload_during_init": lambda: lint_unload_during_init(WIN7),
    "lint_unload_during_init_legacy": lambda: lint_unload_during_init(WIN7, legacy=True),
    "lint_wait_at_dispatch": lambda: lint_wait_at_dispatch(WIN10),
    "lint_wait_at_dispatch_win11": lambda: lint_wait_at_dispatch(WIN11),
    "bugcheck_101_hung_cpu": lambda: bugcheck_101_hung_cpu(WIN10),
    "bugcheck_d1_lock_holder": lambda: bugcheck_d1_lock_holder(WIN10),
}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    out = argv[0] if argv else "mock_targets"
    os.makedirs(out, exist_ok=True)
    for name, make in SHIPPED.items():
        path = os.path.join(out, name + ".json.gz")
        make().save(path)
        print("%s  %d bytes" % (path, os.path.getsize(path)))


if __name__ == "__main__":
    main()
