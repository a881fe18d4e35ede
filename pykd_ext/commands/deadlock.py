"""deadlock: wait-for cycles and wait chains among threads and locks.

Examples:
  pykd-ext deadlock --target mock_targets/eresource_deadlock.json.gz
  pykd-ext deadlock --target case.json.gz --format json
  pykd-ext deadlock --target case.json.gz --format dot | dot -Tsvg > waits.svg
"""
from ..analysis.waitgraph import analyze
from ..render.deadlock import links, render_dot, render_json, render_text, to_dict
from ..render.doc import note_read_budget
from ..render.style import text_output
from .common import status

NAME = "deadlock"
HELP = "find wait-for cycles and wait chains among threads and locks"


def add_arguments(p):
    p.add_argument("--format", choices=("text", "json", "dot"), default="text",
                   help="text for people (default), json for programs, dot for graphviz")


def run(args, target, out):
    a = analyze(target)
    build = target.layouts().build
    if args.format == "json":
        return status(render_json(a, out, target.name, build, target))
    if args.format == "dot":
        render_dot(a, out, "deadlock -- %s (%s)" % (target.name, build))
    else:
        style, stream = text_output(out, args.no_color, lambda: links(a))
        render_text(a, stream, style, "deadlock -- %s (%s)" % (target.name, build))
    return status(note_read_budget(to_dict(a, target.name, build), target))
