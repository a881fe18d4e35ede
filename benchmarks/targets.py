"""Large generated targets for the benchmark: a busy server, laid out by the scenario builder.

    machine(20000)   # 20,000 ERESOURCEs, 5,000 threads, 200 processes, 32 CPUs, ...

Everything scales with the number of ERESOURCEs `n`:

    threads       n / 4          (most wait on their own event or sleep; ~10 % run user code)
    processes     n / 50         (at least 4; 70 % of them asked for a finer timer resolution)
    held locks    ~10 % of the resources (exclusive or shared), by threads that are not blocked
    contention    ~1 % of the resources: an owner that waits on an event, 1-3 waiters behind it
    a cycle       one, hidden in the middle: three threads, three resources, each holding one
                  and waiting for the next
    processors    4 / 8 / 32 / 64 (by size), each with a normal and a threaded DPC queue
                  (n / 100 DPCs per processor, at least 16, at most 256)
    PnP tree      n / 20 device nodes with 3-device stacks (filter, FDO, pci's PDO), under
                  n / 400 bus nodes
    pending IRPs  n / 100 power IRPs on PopIrpList (a tenth of them stuck for minutes) and
                  n / 200 IRPs on threads' IRP lists

The answer the benchmark checks (the cycle's threads) is returned beside the builder, so
run.py can say whether the analysis found it; nothing in pykd_ext reads this file.
"""
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pykd_ext.mock.builder import ScenarioBuilder  # noqa: E402

WIN10 = "win10-22h2-x64-10.0.19041.3570"

WAIT_TOP = ["nt!KiSwapContext+0x76", "nt!KiSwapThread+0x3a7", "nt!KiCommitThreadWait+0x14f",
            "nt!KeWaitForSingleObject+0x233"]
SYSTEM_START = ["nt!PspSystemThreadStartup+0x55", "nt!KiStartSystemThread+0x28"]
ACQUIRE_X = ["nt!ExpWaitForResource+0x6d", "nt!ExAcquireResourceExclusiveLite+0x1a6"]
ACQUIRE_S = ["nt!ExpWaitForResource+0x6d", "nt!ExAcquireResourceSharedLite+0x2b1"]
USER_WAIT = ["nt!NtWaitForSingleObject+0x6a", "nt!KiSystemServiceCopyEnd+0x25"]
DRIVERS = ["AcmeFs", "AcmeNet", "AcmeStor", "AcmeAudio", "AcmeUsb", "AcmeFlt"]
IMAGES = ["svchost.exe", "sqlservr.exe", "w3wp.exe", "lsass.exe", "explorer.exe", "MsMpEng.exe", "java.exe"]


class Expected(object):
    """What the generator put in, for run.py's sanity check (never read by the analysis)."""

    def __init__(self):
        self.cycle_threads = []
        self.irp = 0
        self.device = 0
        self.counts = {}


def _cpus(n):
    return 4 if n <= 1000 else 8 if n <= 5000 else 32 if n <= 20000 else 64


LAYOUTS = {"sequential": 0, "scattered": 64}     # pool regions objects are spread over


def machine(n, build=WIN10, seed=1, layout="sequential"):
    """A builder holding a busy machine with `n` ERESOURCEs, and its Expected.  `layout`:
    "sequential" lays pool objects out in the order they are made (the best case for the
    cache's read-ahead), "scattered" spreads them at random over 64 pool regions (its worst
    case: what a long-running machine's fragmented pool looks like to a list walk)."""
    rnd = random.Random(seed * 1000003 + n)
    b = ScenarioBuilder(build, comment="generated: %d ERESOURCEs, %s pool" % (n, layout), compact_stacks=True,
                        scatter=LAYOUTS[layout], seed=seed)
    exp = Expected()
    for name in DRIVERS:
        b.module(name, name + ".sys", size=0x40000)
    b.module("ntdll", "ntdll.dll", base=0x7ffb6b2a0000, size=0x1f5000)
    system = b.process("System", 4)
    idle = b.process("Idle", 0, listed=False)
    nproc = max(4, n // 50)
    procs = [system] + [b.process(IMAGES[i % len(IMAGES)], 0x100 + 4 * i) for i in range(1, nproc)]
    for p in procs[1:]:
        if rnd.random() < 0.3:
            continue
        req = rnd.choice((0x2710, 0x1388, 0))
        b.timer_resolution(p, requested=req, smallest=req or 0x2710)
    b.time_increment(0x1388)

    nthreads = max(16, n // 4)
    tid = [0x200]

    def new_tid():
        tid[0] += 4
        return tid[0]

    def driver_frames(drv):
        return ["%s!Worker%d+0x%x" % (drv, rnd.randrange(4), 0x20 + 4 * rnd.randrange(32)),
                "%s!ThreadMain+0x4c" % drv] + SYSTEM_START

    resources = [b.eresource() for _ in range(n)]
    free = list(range(n))
    rnd.shuffle(free)

    def take():
        return resources[free.pop()]

    threads = 0
    # the hidden cycle: three threads, each holding one resource and waiting for the next
    cyc = [take() for _ in range(3)]
    owners = []
    for i in range(3):
        drv = DRIVERS[i]
        t = b.thread(procs[0], new_tid(), "%s!ThreadMain" % drv, waited_ticks=9000 + i,
                     frames=WAIT_TOP + ACQUIRE_X + driver_frames(drv))
        b.acquire_resource(cyc[i], t)
        owners.append(t)
        threads += 1
    for i in range(3):
        b.wait_resource(owners[i], cyc[(i + 1) % 3])
    exp.cycle_threads = owners

    # contended resources: an owner waiting on an event nobody sets, 1-3 waiters behind it
    for _ in range(max(2, n // 100)):
        r = take()
        drv = rnd.choice(DRIVERS)
        owner = b.thread(procs[0], new_tid(), "%s!ThreadMain" % drv, waited_ticks=rnd.randrange(100, 5000),
                         frames=WAIT_TOP + driver_frames(drv))
        b.acquire_resource(r, owner)
        b.wait_on(owner, [b.event(notification=True)])
        threads += 1
        for _ in range(rnd.randint(1, 3)):
            exclusive = rnd.random() < 0.5
            p = rnd.choice(procs)
            w = b.thread(p, new_tid(), "ntdll!RtlUserThreadStart", waited_ticks=rnd.randrange(50, 4000),
                         frames=WAIT_TOP + (ACQUIRE_X if exclusive else ACQUIRE_S)
                         + ["%s!Dispatch+0x71" % drv, "nt!IofCallDriver+0x55"] + USER_WAIT)
            b.wait_resource(w, r, exclusive=exclusive)
            threads += 1

    # everyone else: waiting on an event of their own, asleep, or running user code; about
    # one in three holds a resource (exclusive or shared) while it waits
    held = n // 10
    while threads < nthreads:
        p = rnd.choice(procs)
        kind = rnd.random()
        if p == system:
            drv = rnd.choice(DRIVERS)
            t = b.thread(p, new_tid(), "%s!ThreadMain" % drv, waited_ticks=rnd.randrange(0, 3000),
                         frames=WAIT_TOP + driver_frames(drv))
        else:
            state = "Ready" if kind < 0.1 else "Waiting"
            t = b.thread(p, new_tid(), "ntdll!RtlUserThreadStart", state=state, wait_reason="UserRequest",
                         waited_ticks=rnd.randrange(0, 3000), frames=WAIT_TOP + USER_WAIT)
        if kind < 0.1 and p != system:
            pass
        elif kind < 0.3:
            b.sleep(t)
        else:
            b.wait_on(t, [b.event(notification=rnd.random() < 0.5)])
        if held and free and rnd.random() < 0.4:
            b.acquire_resource(take(), t, exclusive=rnd.random() < 0.6)
            held -= 1
        threads += 1

    # processors and their DPC queues
    ncpu = _cpus(n)
    depth = max(16, min(256, n // 100))
    for cpu in range(ncpu):
        t = b.thread(idle, 0, "nt!KiIdleLoop", state="Running", frames=["nt!KiIdleLoop+0x5a"])
        b.processor(cpu, current_thread=t, idle_thread=t)
        for i in range(depth):
            drv = rnd.choice(DRIVERS)
            b.queue_dpc(cpu, "%s!Dpc%d" % (drv, i % 4))
        for i in range(max(1, depth // 8)):
            b.queue_dpc(cpu, "nt!KiDpcWatchdog", threaded=True, importance=2)

    # the PnP tree: bus nodes with 2-device stacks below them, power IRPs pending at some
    pci = b.driver_object("\\Driver\\pci", module="nt")
    drivers = [b.driver_object("\\Driver\\" + d) for d in DRIVERS]
    buses = []
    for i in range(max(2, n // 400)):
        fdo, pdo = b.device_stack([(pci, None, 0x100), (pci, "NTPNP_PCI%04d" % i, 0x80)])
        buses.append(b.devnode(pdo, "PCI\\VEN_8086&DEV_%04X\\%d" % (0x1000 + i, i), "pci"))
    stacks = []
    for i in range(max(4, n // 20)):
        # an upper filter, the function driver's FDO, pci's PDO (as most PCI devices have)
        flt, drv = rnd.sample(drivers, 2)
        top, fdo, pdo = b.device_stack([(flt, None, 0x40), (drv, None, 0x200), (pci, "%08x" % (0x100 + i), 0x80)])
        b.devnode(pdo, "PCI\\VEN_10EC&DEV_%04X\\%d" % (0x8000 + i, i), "svc%d" % i, parent=rnd.choice(buses))
        stacks.append((top, fdo, pdo))

    def power(minor, device, **kw):
        loc = {"MajorFunction": 0x16, "MinorFunction": minor, "DeviceObject": device}
        loc.update(kw)
        return loc
    for i in range(max(2, n // 100)):
        # a D3 SET_POWER IRP sent to the top of the stack, pending at the FDO (its own
        # location first: the power manager's, as PoRequestPowerIrp allocates it)
        top, fdo, pdo = rnd.choice(stacks)
        d3 = dict(Parameters__Power__Type="DevicePowerState", Parameters__Power__State="PowerDeviceD3")
        irp = b.irp([power(0x02, pdo, **d3), power(0x02, fdo, CompletionRoutine="pci!PciPowerUpCompletion", **d3),
                     power(0x02, top, CompletionRoutine="nt!PopRequestCompletion", **d3), {}], current=1)
        b.pop_irp(irp, pdo, fdo, age_seconds=600.0 if i % 10 == 0 else 1.0, target_device=top)
        if not exp.irp:
            exp.irp, exp.device = irp, top
    users = [a for a, info in b.threads.items() if info.start == "ntdll!RtlUserThreadStart"]
    for i in range(max(2, n // 200)):
        fdo = rnd.choice(stacks)[0]
        b.irp([{"MajorFunction": 0x03, "DeviceObject": fdo}], current=0, thread=rnd.choice(users))
    exp.counts = {"resources": n, "threads": threads + ncpu, "processes": nproc, "cpus": ncpu,
                  "dpcs_per_cpu": depth + max(1, depth // 8), "devnodes": len(buses) + len(stacks)}
    return b, exp


if __name__ == "__main__":
    import time
    for size in [int(a) for a in sys.argv[1:]] or [1000]:
        t0 = time.perf_counter()
        b, exp = machine(size)
        t1 = time.perf_counter()
        tg = b.fast_target()
        print("%d: built in %.1f s, target in %.1f s, %d pages, %s" % (
            size, t1 - t0, time.perf_counter() - t1, len(b.mem.pages), exp.counts))
