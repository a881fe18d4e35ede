"""devstack: the device stack of a device object, top to bottom, with its device node.

Examples:
  pykd-ext devstack 'fffffa80`0c089050' --target case.json.gz   (quote a backtick in a shell)
  !py -m pykd_ext devstack fffffa800c089050
"""
from ..errors import UsageError
from ..kernel.io import device_stack
from ..render.doc import note_read_budget
from ..render.io import device_links, devstack_dict, render_devstack_text, render_json
from ..render.style import text_output
from .common import evaluate, expression, status

NAME = "devstack"
NEEDS_ARGUMENTS = True
HELP = "the device stack of a device object (device, driver, extension, name) and its device node"


def add_arguments(p):
    p.add_argument("device", type=expression,
                   help="a DEVICE_OBJECT address or expression: hex, module!symbol, poi(...), + and -; "
                        "inside WinDbg any debugger expression (@$t0, poi(@rcx+8))")
    p.add_argument("--format", choices=("text", "json"), default="text")


def run(args, target, out):
    args.device = evaluate(args.device, target, "devstack")
    st = device_stack(target, args.device)
    if not st.devices[0].readable and len(st.devices) == 1:
        raise UsageError("devstack: %s" % (st.diagnostics[0].message if st.diagnostics
                                           else "0x%x is unreadable" % args.device))
    doc = note_read_budget(devstack_dict(st, target.name, target.layouts().build), target)
    if args.format == "json":
        render_json(doc, out)
        return status(doc)
    style, stream = text_output(out, args.no_color, lambda: device_links(st.devices))
    render_devstack_text(st, stream, style, "devstack 0x%x -- %s (%s)" % (
        args.device, target.name, target.layouts().build), doc)
    return status(doc)
