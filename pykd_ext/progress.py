"""Progress of long scans: silent for the first second, then a line now and then.

The CLI gives the CachedTarget a Progress writing to stderr, which is the console's stderr,
and inside WinDbg the debugger's output window (pykd's bootstrapper sends sys.stderr
there).  Walkers say what they are doing (`report(target, "threads", n)`); the cache
ticks on every backend call, so a scan that waits on a slow link is heard from too.
Nothing here reads the target.  Ctrl+C / Ctrl+Break are not caught here: the analyses
catch them and report what they found so far.
"""
import time


class Progress(object):
    """Writes `prefix: <elapsed>: <what> <n>; <pages> pages read` at most once per
    `interval` seconds, and only once `after` seconds have passed since start."""

    def __init__(self, write, prefix="pykd-ext", after=1.0, interval=1.0, clock=time.monotonic):
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
        if now < self._next:
            return
        self._next = now + self.interval
        self.lines += 1
        doing = "%s: %s so far; " % (self.what, format(self.count, ",")) if self.what else ""
        self._write("%s: %.0f s: %s%s pages read (Ctrl+C stops and prints what was found)\n"
                    % (self.prefix, now - self.start, doing, format(self.pages, ",")))

    def finish(self):
        """A closing line, if anything was said."""
        if self.lines:
            self._write("%s: done in %.1f s, %s pages read\n"
                        % (self.prefix, self._clock() - self.start, format(self.pages, ",")))


def report(target, what, count):
    """Tell the target's progress reporter (if any) where a scan is; cheap when there is none."""
    p = target.progress
    if p is not None:
        p.report(what, count)
