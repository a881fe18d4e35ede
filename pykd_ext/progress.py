"""Progress of long scans: silent for the first second, then a line now and then.

The CLI gives the CachedTarget a Progress writing to stderr, which is the console's stderr,
and inside WinDbg the debugger's output window (pykd's bootstrapper sends sys.stderr
there).  Walkers say what they are doing (`report(target, "threads", n)`); the cache
ticks on every backend call, so a scan that waits on a slow link is heard from too.
Nothing here reads the target.  Ctrl+C / Ctrl+Break are not caught here: the analyses
catch them and report what they found so far.

A deadline (`--max-seconds`) is checked at the same places: when it has passed, the next
tick raises TimeLimit (a KeyboardInterrupt, which the analyses already turn into "the
results below cover what was read before"), once.  It is the one bound that works where a
user break cannot arrive: inside WinDbg on Python 3.9 and later the bootstrapper's
Ctrl+Break never reaches the script (README: Three ways to run it).  Noticing the break
ourselves is not possible either: DbgEng's interrupt query (IDebugControl::GetInterrupt) is
called only by the bootstrapper's watcher (pykd-ext sources/windbgext.cpp:72-83), which also
clears it, and by kdlib's own extension watcher (kdlib source/windbg/windbg.cpp:121); pykd
exposes no Python function for it (pykd pymod.cpp defines none).
"""
import time

# How a long scan can be stopped, as said in the progress lines: only what really works there.
STOP_CTRL_C = "Ctrl+C stops and prints what was found"
STOP_CTRL_BREAK = "Ctrl+Break stops and prints what was found"
STOP_NONE = ("Ctrl+Break cannot reach a script on Python 3.9+ inside WinDbg: "
             "--max-seconds N bounds the scan")


class TimeLimit(KeyboardInterrupt):
    """The --max-seconds deadline passed: the scan stops as on a user break."""


class Progress(object):
    """Writes `prefix: <elapsed>: <what> <n>; <pages> pages read` at most once per
    `interval` seconds, and only once `after` seconds have passed since start."""

    def __init__(self, write, prefix="pykd-ext", after=1.0, interval=1.0, clock=None,
                 stop_hint=STOP_CTRL_C, max_seconds=None):
        """`write` None: silent (a deadline only); `max_seconds`: raise TimeLimit once
        that long after start."""
        clock = clock or time.monotonic
        self._write = write
        self.prefix = prefix
        self.after = after
        self.interval = interval
        self._clock = clock
        self.start = clock()
        self._next = self.start + after
        self.what = None
        self.count = 0
        self.pages = 0
        self.lines = 0
        self.stop_hint = stop_hint
        self.max_seconds = max_seconds
        self._deadline = None if max_seconds is None else self.start + max_seconds
        self.timed_out = False

    def set_deadline(self, max_seconds):
        """Raise TimeLimit (once) at the first tick or report `max_seconds` after start."""
        self.max_seconds = max_seconds
        self._deadline = None if max_seconds is None else self.start + max_seconds

    def report(self, what, count):
        """The scan is at item `count` of `what` (a phrase: "threads", "ERESOURCEs")."""
        self.what, self.count = what, count
        self._maybe()

    def tick(self, pages):
        """A backend call was made; `pages` read so far."""
        self.pages = pages
        self._maybe()

    def _maybe(self):
        now = self._clock()
        if self._deadline is not None and now >= self._deadline and not self.timed_out:
            self.timed_out = True            # once: what follows (naming, rendering) may read on
            raise TimeLimit("--max-seconds %g reached" % self.max_seconds)
        if now < self._next or self._write is None:
            return
        self._next = now + self.interval
        self.lines += 1
        doing = "%s: %s so far; " % (self.what, format(self.count, ",")) if self.what else ""
        self._write("%s: %.0f s: %s%s pages read (%s)\n"
                    % (self.prefix, now - self.start, doing, format(self.pages, ","), self.stop_hint))

    def finish(self):
        """A closing line, if anything was said."""
        if self.lines and self._write is not None:
            self._write("%s: done in %.1f s, %s pages read\n"
                        % (self.prefix, self._clock() - self.start, format(self.pages, ",")))


def stopped(target, e):
    """Why a scan stopped, for an analysis that caught the KeyboardInterrupt or SystemExit `e`
    and reports what it found before it ("KeyboardInterrupt", "CTRL+BREAK", "--max-seconds 5
    reached").  The target is told too (its `note_interrupt`, if it has one): the analysis
    returns normally, and a caller running several commands over one target -- `record` --
    must still know the run was cut short, and stop."""
    reason = str(e) or type(e).__name__
    note = getattr(target, "note_interrupt", None)
    if note is not None:
        note(reason)
    return reason


def report(target, what, count):
    """Tell the target's progress reporter (if any) where a scan is; cheap when there is none."""
    p = target.progress
    if p is not None:
        p.report(what, count)
