"""What several commands share: address arguments, the --format option, and writing a
command's document as JSON or text."""
import argparse
import json
import re

from ..errors import MemoryFault, SymbolNotFound, UsageError
from ..render.doc import note_read_budget
from ..render.style import text_output
from ..target.base import wrapped

# the exit status of a command that ran (cli.py's docstring lists them all): 0 the results are
# complete, 3 they are partial (the document says complete: false -- interrupted, --max-seconds,
# the read budget, or a warning that a reading was cut short), whether printed as text or JSON
EXIT_OK, EXIT_PARTIAL = 0, 3

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


def status(doc):
    """The exit status a command's document calls for: EXIT_PARTIAL unless it is complete."""
    return EXIT_OK if doc["complete"] else EXIT_PARTIAL


def emit(args, out, doc, render_text, links, title, target=None):
    """Write a command's document: as JSON, or as text (DML with `links()` inside WinDbg); the
    exit status: EXIT_PARTIAL for a partial document (`target`'s read budget spent makes it one)."""
    note_read_budget(doc, target)
    if args.format == "json":
        json.dump(doc, out, indent=2)
        out.write("\n")
        return status(doc)
    style, stream = text_output(out, args.no_color, links)
    render_text(doc, stream, style, title)
    return status(doc)


# -- addresses as WinDbg users type them ---------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:(?P<num>(?:0x)?[0-9a-f`]+)(?![\w!])|(?P<sym>[a-z_][\w]*![\w@?$]+|[a-z_][\w]*)"
                    r"|(?P<op>[-+()]))", re.I)


class Expression(object):
    """An address expression as WinDbg takes one.  Evaluated by `evaluate`: inside a debugger
    session (the pykd backend) by the debugger itself, any expression it takes (registers,
    pseudo-registers, MASM operators); offline by the subset read here: hex numbers
    (`fffffa80`0c089050`, 0x...), `module!symbol` (a bare name is nt's), `poi(expr)` (the
    pointer at expr), `+` and `-`.  What the subset does not take is kept, not refused, when
    the argument is parsed -- which target will evaluate it is known only later -- and said
    by `evaluate` if the target is offline."""

    def __init__(self, text):
        self.text = text
        self.tokens = []
        self.error = None
        try:
            self._tokenize(text)
            _Parser(self.tokens, None).check()
        except argparse.ArgumentTypeError as e:
            self.error = str(e)

    def _tokenize(self, text):
        pos = 0
        while pos < len(text.strip()):
            m = _TOKEN.match(text.strip(), pos)
            if not m or m.end() == pos:
                raise argparse.ArgumentTypeError("not an address or expression: %r (hex, module!symbol, "
                                                 "poi(...), + and -; e.g. 'fffffa80`0c089050', "
                                                 "poi(nt!PopIrpList)+0x10)" % text)
            kind = m.lastgroup
            self.tokens.append((kind, m.group(kind)))
            pos = m.end()
        if not self.tokens:
            raise argparse.ArgumentTypeError("not an address: %r" % text)

    def needs_debugger(self):
        """Whether the text names a register (`@rcx`) or pseudo-register (`@$t0`, `$ip`):
        values only a debugger session has.  Decorated names (`nt!?x@@...`) are symbols."""
        return re.search(r"[@$]", _SYMBOL.sub("", self.text)) is not None

    def __repr__(self):
        return self.text


_SYMBOL = re.compile(r"[a-z_][\w]*![\w@?$]+", re.I)


class _Parser(object):
    def __init__(self, tokens, target):
        self.tokens, self.i, self.target = tokens, 0, target

    def _peek(self):
        return self.tokens[self.i] if self.i < len(self.tokens) else (None, None)

    def check(self):
        self.expr()
        if self.i != len(self.tokens):
            raise argparse.ArgumentTypeError("unexpected %r in the expression" % (self._peek()[1],))

    def expr(self):
        v = self.term()
        while self._peek() in (("op", "+"), ("op", "-")):
            op = self.tokens[self.i][1]
            self.i += 1
            w = self.term()
            if v is not None and w is not None:
                v = (v + w if op == "+" else v - w) & 0xFFFFFFFFFFFFFFFF
        return v

    def term(self):
        kind, val = self._peek()
        if kind is None:
            raise argparse.ArgumentTypeError("the expression ends too soon")
        self.i += 1
        if kind == "num":
            v = int(val.replace("`", "").lower().replace("0x", "", 1), 16)
            if v > 0xFFFFFFFFFFFFFFFF:
                raise argparse.ArgumentTypeError("%s is wider than a 64-bit address" % val)
            return v
        if kind == "sym" and val.lower() == "poi" and self._peek() == ("op", "("):
            self.i += 1
            inner = self.expr()
            if self._peek() != ("op", ")"):
                raise argparse.ArgumentTypeError("poi( without its )")
            self.i += 1
            return None if self.target is None else self._poi(inner)
        if kind == "sym":
            if self.target is None:
                return None
            name = val if "!" in val else "nt!" + val
            try:
                return self.target.symbol(name)
            except SymbolNotFound:
                raise UsageError("no symbol %s in this target" % name)
        if val == "(":
            v = self.expr()
            if self._peek() != ("op", ")"):
                raise argparse.ArgumentTypeError("( without its )")
            self.i += 1
            return v
        raise argparse.ArgumentTypeError("unexpected %r in the expression" % val)

    def _poi(self, address):
        try:
            raw = self.target.read(address, self.target.pointer_size)
        except MemoryFault as e:
            raise UsageError("poi(0x%x): the pointer there is unreadable (0x%x)" % (address, e.address))
        return int.from_bytes(raw, "little")


def expression(text):
    """argparse type: an address or expression (see Expression)."""
    return Expression(text)


def evaluate(expr, target, command):
    """The address an Expression (or a plain int) stands for in `target`; UsageError, naming
    `command`, for a symbol the target lacks, an unreadable poi() or an expression that
    cannot be evaluated here.  Inside a debugger session the debugger evaluates it
    (PykdTarget.evaluate_expression, found through the cache and a recording)."""
    if isinstance(expr, int):
        return expr
    debugger = wrapped(target, "evaluate_expression")
    try:
        if debugger is not None:
            return debugger(expr.text)
        if expr.error is not None:
            if expr.needs_debugger():
                raise UsageError("%r: pseudo-registers and registers need a live debugger session (inside "
                                 "WinDbg); %s has none: give the address" % (expr.text, target.name))
            raise UsageError(expr.error)
        return _Parser(expr.tokens, target).expr()
    except UsageError as e:
        raise UsageError("%s: %s" % (command, e))
