"""One small module per command: arguments -> analyses -> renderer.

Each module defines NAME, HELP, add_arguments(parser) and run(args, target, out) -> int.
"""
from . import deadlock, devstack, dpcs, irp, powerirps, record, running, stacks, timerres, triage

COMMANDS = {m.NAME: m for m in (triage, deadlock, powerirps, irp, devstack, dpcs, timerres, stacks, running, record)}
