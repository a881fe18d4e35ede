"""What several commands share: address arguments, the --format option, and writing a
command's document as JSON or text."""
import argparse
import json
import re

from ..render.style import text_output

_ADDRESS = re.compile(r"^(0x)?([0-9a-f]+)$")


def address(text):
    """An address as WinDbg prints it: `fffffa80`0c089050`, `0xfffffa800c089050`, hex digits."""
    m = _ADDRESS.match(text.strip().lower().replace("`", ""))
    if not m or len(m.group(2)) > 16:
        raise argparse.ArgumentTypeError("not an address: %r (give hex, e.g. fffffa80`0c089050)" % text)
    return int(m.group(2), 16)


def add_format(p, *extra):
    p.add_argument("--format", choices=("text", "json") + extra, default="text",
                   help="text for people (default; DML inside WinDbg), json for programs")


def emit(args, out, doc, render_text, links, title):
    """Write a command's document: as JSON, or as text (DML with `links()` inside WinDbg)."""
    if args.format == "json":
        json.dump(doc, out, indent=2)
        out.write("\n")
        return 0
    style, stream = text_output(out, args.no_color, links)
    render_text(doc, stream, style, title)
    return 0
