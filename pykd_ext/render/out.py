"""Text that can always be written, and streams that never refuse it.

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
