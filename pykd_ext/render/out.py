"""Writing a command's output where it lands, in few calls.

Inside WinDbg, `sys.stdout` is the bootstrapper's DbgOut: every `write`/`writedml` is one
`IDebugControl::ControlledOutputWide` call (pykd-ext sources/dbgout.h:24-47), and it is told
from a console by having `writedml` (its `isatty()` returns False, dbgout.h:60-62).  The
renderers write a document in many small pieces (`json.dump` writes per token, tables per
line), so there a command's output is gathered and handed over in one call per kind (text or
DML) when the command ends -- or when it stops early, so what was found is never lost.
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
