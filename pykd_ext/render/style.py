"""How text output looks where it lands.

- inside WinDbg (the stream has `writedml`, as pykd's `sys.stdout` does there): DML, with every
  known address a link to the debugger command that shows it (`!thread`, `dt nt!_ERESOURCE`,
  `!irp`, `!devstack`, `!drvobj`, ...) and findings in the debugger's own colours;
- a console: colorama colours;
- files, pipes, `--no-color`, `NO_COLOR`: plain text;
- `--color` (or `FORCE_COLOR=1`) forces the colours into a file or a pager (`| less -R`);
  `--no-color`/`NO_COLOR` win over `FORCE_COLOR` (https://no-color.org, https://force-color.org).

Renderers write plain text and wrap spans with `style(kind, text)`.  In DML mode a span is
marked with control characters that `DmlStream` turns into tags after escaping the text, and
addresses are linked after layout, so tables (tabulate) keep their column widths.
"""
import os
import re
import sys

from .out import unwrap

PLAIN, ANSI, DML = "plain", "ansi", "dml"
KINDS = ("bad", "warn", "head", "addr", "drv", "dim")

_OPEN, _MID, _CLOSE = "\x01", "\x02", "\x03"

_DML_TAGS = {
    "bad": ('<col fg="changed"><b>', "</b></col>"),
    "warn": ('<col fg="warnfg">', "</col>"),
    "head": ("<b>", "</b>"),
    "addr": ("", ""),                       # addresses are links already
    "drv": ('<col fg="emphfg"><b>', "</b></col>"),
    "dim": ('<col fg="subfg">', "</col>"),
}


class Style(object):
    def __init__(self, mode):
        self.mode = mode
        if mode == ANSI:
            import colorama
            fix = getattr(colorama, "just_fix_windows_console", None)
            if fix is not None:
                fix()
            self._codes = {"bad": colorama.Fore.RED + colorama.Style.BRIGHT,
                           "warn": colorama.Fore.YELLOW, "head": colorama.Style.BRIGHT,
                           "addr": colorama.Fore.CYAN, "drv": colorama.Fore.MAGENTA + colorama.Style.BRIGHT,
                           "dim": colorama.Style.DIM}
            self._reset = colorama.Style.RESET_ALL

    def __call__(self, kind, text):
        if self.mode == PLAIN:
            return text
        if self.mode == DML:
            return "%s%s%s%s%s" % (_OPEN, kind, _MID, text, _CLOSE)
        return self._codes[kind] + text + self._reset


class _Force(object):
    """The value `--color` stores in `args.no_color`: colour whatever the stream is."""

    def __repr__(self):
        return "FORCE"


FORCE = _Force()


def output_mode(stream, no_color_flag):
    if no_color_flag is FORCE:
        return DML if hasattr(stream, "writedml") else ANSI
    if no_color_flag or os.environ.get("NO_COLOR"):
        return PLAIN
    if hasattr(stream, "writedml"):
        return DML
    if os.environ.get("FORCE_COLOR"):
        return ANSI
    isatty = getattr(stream, "isatty", None)
    if isatty and isatty() and unwrap(stream) is sys.stdout:
        return ANSI
    return PLAIN


def escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


_ADDR = re.compile(r"0x[0-9a-fA-F]{8,16}\b")
_SPAN = re.compile("(%s[a-z]+%s|%s)" % (_OPEN, _MID, _CLOSE))


def to_dml(text, links):
    """Plain text with style marks -> DML: escaped, marks to tags, known addresses to links."""
    def link(m):
        cmd = links.get(int(m.group(0), 16))
        if cmd is None:
            return m.group(0)
        return '<link cmd="%s">%s</link>' % (escape(cmd), m.group(0))

    out, open_kinds = [], []
    for piece in _SPAN.split(text):
        if not piece:
            continue
        if piece.startswith(_OPEN):
            kind = piece[1:-1]
            open_kinds.append(kind)
            out.append(_DML_TAGS.get(kind, ("", ""))[0])
        elif piece == _CLOSE:
            kind = open_kinds.pop() if open_kinds else None
            out.append(_DML_TAGS.get(kind, ("", ""))[1])
        else:
            out.append(_ADDR.sub(link, escape(piece)))
    return "".join(out)


class DmlStream(object):
    """A text stream for renderers that writes DML to a debugger output stream."""

    def __init__(self, stream, links):
        self.stream = stream
        self.links = links

    def write(self, text):
        self.stream.writedml(to_dml(text, self.links))

    def flush(self):
        flush = getattr(self.stream, "flush", None)
        if flush is not None:
            flush()


def text_output(stream, no_color_flag, links_fn):
    """(style, stream to write to) for text output on `stream`; links_fn() gives the
    {address: debugger command} map, asked for only in DML mode."""
    mode = output_mode(stream, no_color_flag)
    if mode == DML:
        return Style(DML), DmlStream(stream, links_fn())
    return Style(mode), stream


def wrap(text, width):
    """Words of `text` in lines of at most `width` characters (a longer word gets its own line)."""
    words, lines, cur = text.split(), [], ""
    for word in words:
        if cur and len(cur) + 1 + len(word) > width:
            lines.append(cur)
            cur = word
        else:
            cur = (cur + " " + word) if cur else word
    if cur:
        lines.append(cur)
    return lines
