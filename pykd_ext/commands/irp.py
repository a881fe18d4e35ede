"""irp: one IRP, every stack location: major/minor by name, power type and state, device and
driver per location, completion routine, pending and cancel flags, the thread it belongs to,
and where it is pending now.

Examples:
  pykd-ext irp 'fffffa80`08f5cc10' --target case.json.gz   (quote a backtick in a shell)
  !py -m pykd_ext irp fffffa8008f5cc10
"""
from ..errors import MemoryFault, UsageError
from ..kernel.io import decode_device, decode_irp
from ..kernel.processes import thread_summary
from ..render.doc import note_read_budget
from ..render.io import device_links, irp_dict, render_irp_text, render_json
from ..render.style import text_output
from .common import evaluate, expression, status

NAME = "irp"
NEEDS_ARGUMENTS = True
HELP = "an IRP's stack locations, the driver it is pending at and its thread"


def add_arguments(p):
    p.add_argument("irp", type=expression,
                   help="an IRP address or expression: hex, module!symbol, poi(...), + and -; "
                        "inside WinDbg any debugger expression (@$t0, poi(@rcx+8))")
    p.add_argument("--format", choices=("text", "json"), default="text")


def run(args, target, out):
    args.irp = evaluate(args.irp, target, "irp")
    irp = decode_irp(target, args.irp)
    if not irp.readable:
        raise UsageError("irp: %s" % irp.diagnostics[0].message)
    devices = {}
    for loc in irp.locations:
        if loc.device and loc.device not in devices:
            devices[loc.device] = decode_device(target, loc.device, irp.diagnostics)
    thread = thread_summary(target, irp.thread)
    doc = note_read_budget(irp_dict(irp, devices, thread, target.describe, target.name,
                                     target.layouts().build), target)
    if args.format == "json":
        render_json(doc, out)
        return status(doc)
    extra = {irp.address: "!irp 0x%x" % irp.address}
    if irp.thread:
        extra[irp.thread] = "!thread 0x%x" % irp.thread
    style, stream = text_output(out, args.no_color, lambda: device_links(devices.values(), extra))
    render_irp_text(doc, stream, style, "irp 0x%x -- %s (%s)" % (args.irp, target.name, target.layouts().build))
    return status(doc)
