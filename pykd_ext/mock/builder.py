"""The scenario builder: lays real kernel structures out, by a build's layout, in a sparse
memory image, and writes the result as a mock target file.

    b = ScenarioBuilder("win10-22h2-x64-10.0.19041.3570")
    system = b.process("System", pid=4)
    r1, r2 = b.eresource(), b.eresource()
    t = b.thread(system, tid=0x1a4, start="TestDriver!FileMoveThread", frames=[...])
    b.acquire_resource(r1, t)                 # owner entry, flag, active count
    b.wait_resource(t, r2)                    # what this build's kernel does for a waiter
    b.save("mock_targets/x.json.gz")

Its rooms, one per kernel subsystem, are in pykd_ext/mock/kernel/ (threads and waits,
resources, push and spin locks, I/O, DPCs, timers); this class puts them together and boots the machine.

The builder plays the kernel: where builds differ in mechanics (how an ERESOURCE waiter
blocks, how wait blocks link) it does what that build's kernel does, choosing by what the
layout holds.  The analysis only ever sees the memory, symbols, stacks and layouts it writes.
"""
import random

from ..target.layouts import load_shipped, supplement
from .kernel.base import BuilderBase
from .kernel.dpc import DpcMixin
from .kernel.io import IoMixin
from .kernel.pushlocks import PushLocksMixin
from .kernel.memory import (BOOT_POOL_BASE, DRIVER_BASE, HAL_BASE, NT_BASE, NT_SIZE, POOL_BASE,
                            SCATTER_SPAN, STACK_BASE, Memory)
# names users' scripts may import from here (the builder was one module before it had rooms)
from .kernel.memory import (FUNC_SLOT, MAX_PROCESSORS, PAGE, STACK_SIZE, TICK_100NS,  # noqa: F401
                            ModuleInfo, ThreadInfo)

__all__ = ["ScenarioBuilder", "Memory", "FUNC_SLOT", "MAX_PROCESSORS", "PAGE", "STACK_SIZE", "TICK_100NS",
           "ModuleInfo", "ThreadInfo"]
from .kernel.resources import ResourcesMixin
from .kernel.spinlocks import SpinLocksMixin
from .kernel.threads import ThreadsMixin
from .kernel.timers import TimersMixin


class ScenarioBuilder(ThreadsMixin, ResourcesMixin, PushLocksMixin, SpinLocksMixin, IoMixin, DpcMixin,
                      TimersMixin, BuilderBase):
    def __init__(self, build, comment="", compact_stacks=False, scatter=0, seed=0):
        """`compact_stacks`: map only the stack pages a thread's frames use (large generated
        targets: tens of thousands of threads), not the whole kernel stack.
        `scatter`: lay pool objects out over this many regions, each object in one picked at
        random (a long-running machine's fragmented pool: objects made one after another do
        not sit one after another); 0 lays them out in the order they are made."""
        self.layouts = load_shipped(build)
        self.compact_stacks = compact_stacks
        self.build = build
        self.comment = comment
        self.mem = Memory()
        self.modules = {}
        self.symbols = {}
        self._sym_index = {}         # lower-case name -> address
        self._func_size = {}         # lower-case function name -> bytes of code laid out
        self.threads = {}            # KTHREAD -> ThreadInfo (the builder's own bookkeeping)
        self.waited = {}             # KTHREAD -> ticks it has really waited (never shipped)
        self.stacks = {}
        self.processors = []
        self._processor_block = None
        self.bugcheck_data = None
        self._pool = POOL_BASE
        self._regions = None         # [next free address] of each scattered pool region
        self._stack = STACK_BASE
        self._next_driver = DRIVER_BASE
        self.module("nt", "ntkrnlmp.exe", NT_BASE, NT_SIZE)
        self.module("hal", "hal.dll", HAL_BASE, 0x80000)
        self.tick = 0x60000
        shared = int(supplement()["addresses"]["KI_USER_SHARED_DATA"], 16)
        self._shared = shared
        self.set_tick(self.tick)
        self.u32(self.global_("nt!KeMaximumIncrement", 4), TICK_100NS)
        self.u32(self.global_("nt!KeTimeIncrement", 4), TICK_100NS)
        self.process_head = self.global_("nt!PsActiveProcessHead", 16)
        self.list_init(self.process_head)
        self.resource_head = self.global_("nt!ExpSystemResourcesList", 16)
        self.list_init(self.resource_head)
        self.pop_irp_head = self.global_("nt!PopIrpList", 16)
        self.list_init(self.pop_irp_head)
        # the PnP device tree's root (HTREE\ROOT\0, whose PDO belongs to \Driver\PnpManager)
        # (made at boot: from a pool region of their own, so scenario objects keep their places)
        pool, self._pool = self._pool, BOOT_POOL_BASE
        pnpmgr = self.driver_object("\\Driver\\PnpManager", module="nt")
        root_pdo, _ = self.device_object(pnpmgr)
        self.root_devnode = self._new_devnode(root_pdo, "HTREE\\ROOT\\0", "")
        self._pool = pool
        self._boot_data = NT_BASE + NT_SIZE - 0x10000
        self.timer_res_head = self._boot_global("nt!ExpTimerResolutionListHead", 16)
        self.list_init(self.timer_res_head)
        self.u32(self._boot_global("nt!KeMinimumIncrement", 4), 5000)
        self.u64(self.global_("nt!IopRootDeviceNode", 8), self.root_devnode)
        if scatter:
            self._scatter_rnd = random.Random(seed)
            self._regions = [POOL_BASE + i * SCATTER_SPAN for i in range(scatter)]

