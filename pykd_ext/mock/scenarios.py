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
    b.irp([{}] * 9 + [{"MajorFunction": 0x1b, "MinorFunction": 0x17, "DeviceObject": fdo}],
          current=9, thread=worker)
    triage = b.global_("nt!TRIAGE_9F_PNP", 0x30)
    b.bugcheck(0x9F, 4, 0x258, worker, triage)
    return b


SHIPPED = {
    "eresource_deadlock": lambda: eresource_deadlock(WIN81),
    "eresource_deadlock_win7": lambda: eresource_deadlock(WIN7),
    "eresource_deadlock_win10": lambda: eresource_deadlock(WIN10),
    "hang_no_cycle": hang_no_cycle,
    "self_deadlock_fastmutex": self_deadlock_fastmutex,
    "corrupt_thread_list_loop": corrupt_thread_list_loop,
    "corrupt_null_flink": corrupt_null_flink,
    "corrupt_waitblock_unreadable": corrupt_waitblock_unreadable,
    "corrupt_unreadable_process": corrupt_unreadable_process,
    "power_9f4_zteusbnet": power_9f4_zteusbnet,
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
