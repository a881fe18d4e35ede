"""Writing a command's output where it lands, in few calls.

Inside WinDbg, `sys.stdout` is the bootstrapper's DbgOut: every `write`/`writedml` is one
`IDebugControl::ControlledOutputWide` call (pykd-ext sources/dbgout.h:24-47), and it is told
from a console by having `writedml` (its `isatty()` returns False, dbgout.h:60-62).  The
renderers write a document in many small pieces (`json.dump` writes per token, tables per
line), so there a command's output is gathered and handed over in one call per kind (text or
DML) when the command ends -- or when it stops early, so what was found is never lost.

Text that can always be written, and streams that never refuse it.

Two halves, one at each end:

- `printable(text)`: a name read from target memory (a device, driver or process name, a
  module or symbol name from a file) made safe to show, once, where it is decoded: a lone
  surrogate (UTF-16 from a kernel is not validated), a control character (a newline or an
  escape sequence inside a "name" would forge output lines or colours) and anything else
  unprintable become a visible escape, \\x1b, \\u200e, \\udc00.  Printable text is returned
  as it is.
- `safe_stream(stream)`: a stream whose write (and writedml, inside WinDbg) replaces what
  the stream's encoding cannot hold instead of raising UnicodeEncodeError, so that
  `PYTHONIOENCODING=cp1252 pykd-ext devstack ... > file` with a Cyrillic device name still
  writes every line: text, DML and JSON alike (backslashreplace: the character's code, as
  Python itself does on stderr).
"""


class OneWrite(object):
    """A stream that gathers writes for `stream` and passes them on at `close()`: one `write`
    per run of plain text, one `writedml` per run of DML, in the order they came."""

    def __init__(self, stream):
        self.stream = stream
        self._runs = []          # [[kind, [pieces]]]

    def _add(self, kind, text):
        if self._runs and self._runs[-1][0] == kind:
            self._runs[-1][1].append(text)
        else:
            self._runs.append([kind, [text]])

    def write(self, text):
        self._add("write", text)
        return len(text)

    def writedml(self, text):
        self._add("writedml", text)

    def flush(self):
        """Nothing leaves before close(): the point is one debugger output call."""

    def isatty(self):
        return False

    def close(self):
        runs, self._runs = self._runs, []
        for kind, pieces in runs:
            getattr(self.stream, kind)("".join(pieces))
        flush = getattr(self.stream, "flush", None)
        if flush is not None:
            flush()


def for_debugger(stream):
    """`stream` wrapped in OneWrite when it is the debugger's output (it has writedml), else
    `stream` itself: a console or a pipe shows output as it comes."""
    if hasattr(stream, "writedml") and not isinstance(stream, OneWrite):
        return OneWrite(stream)
    return stream


def _escape(c):
    o = ord(c)
    if o < 0x100:
        return "\\x%02x" % o
    if o < 0x10000:
        return "\\u%04x" % o
    return "\\U%08x" % o


def printable(text):
    """`text` with every character str.isprintable() refuses (controls, format characters,
    lone surrogates, unassigned code points, line and paragraph separators) escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def fit(text, encoding):
    """`text` as `encoding` can hold it: what it cannot, as backslash escapes."""
    return text.encode(encoding or "ascii", "backslashreplace").decode(encoding or "ascii", "replace")


class SafeStream(object):
    """Wraps a text stream; everything but write goes to the stream itself."""

    def __init__(self, stream):
        self.wrapped = stream

    def write(self, text):
        try:
            return self.wrapped.write(text)
        except UnicodeEncodeError:
            return self.wrapped.write(fit(text, getattr(self.wrapped, "encoding", None)))

    def __getattr__(self, name):
        return getattr(self.wrapped, name)


class SafeDmlStream(SafeStream):
    """pykd's stream inside WinDbg: DML goes through writedml, as safely."""

    def writedml(self, text):
        try:
            return self.wrapped.writedml(text)
        except UnicodeEncodeError:
            return self.wrapped.writedml(fit(text, getattr(self.wrapped, "encoding", None)))


def safe_stream(stream):
    if isinstance(stream, SafeStream):
        return stream
    return (SafeDmlStream if hasattr(stream, "writedml") else SafeStream)(stream)


def unwrap(stream):
    """The stream a SafeStream wraps (what `is sys.stdout` asks about)."""
    return stream.wrapped if isinstance(stream, SafeStream) else stream
