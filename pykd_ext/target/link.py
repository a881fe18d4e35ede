"""A simulated debugger link in front of a backend: what a session over KDNET or a serial
cable would cost.

Every backend call is charged the link's latency once per round trip -- the kernel debug
protocol moves about a page per reply, so a read of n pages is n round trips -- plus its
payload over the link's bandwidth (a read: the bytes asked for; a symbol, stack or bug
check query: LOOKUP_BYTES, one round trip).  The charge is added up in `charged_s`; with `sleep=True` the
call also waits that long, so a mock target behaves like a slow live target (progress
lines, Ctrl+C) -- `pykd-ext <command> --target F --link kdnet`.

No published per-read latency figures exist for KDNET or serial (see REFERENCE.md): the
profiles are stated assumptions, named and printed with every figure they produce.
"""
import time

from ..errors import MemoryFault, UsageError
from .base import Target

LOOKUP_BYTES = 256        # a symbol, stack or bug check query and its reply, roughly
REPLY_BYTES = 0x1000      # what one reply of the kernel debug protocol carries, about

#: name -> (latency per round trip in seconds, bytes per second, description)
PROFILES = {
    "kdnet": (0.001, 10e6, "KDNET-like: 1 ms per round trip, 10 MB/s"),
    "serial": (0.002, 11520.0, "serial 115200 baud (11,520 B/s), 2 ms per round trip"),
}


def parse_profile(text):
    """`kdnet`, `serial`, or `LATENCY_MS,BYTES_PER_S` -> (latency_s, bytes_per_s, description)."""
    if text in PROFILES:
        return PROFILES[text]
    try:
        ms, bps = (float(x) for x in text.split(","))
        if ms < 0 or bps <= 0:
            raise ValueError
    except ValueError:
        raise UsageError("--link: expected kdnet, serial or LATENCY_MS,BYTES_PER_S (e.g. 5,50000), got %r"
                         % text)
    return ms / 1000.0, bps, "%g ms per round trip, %g B/s" % (ms, bps)


class SimulatedLink(Target):
    live = True

    def __init__(self, backend, latency_s, bytes_per_s, sleep=False):
        self.backend = backend
        self.name = backend.name
        self.latency_s = latency_s
        self.bytes_per_s = bytes_per_s
        self.sleep = sleep
        self.calls = 0
        self.round_trips = 0
        self.bytes = 0
        self.charged_s = 0.0

    def cost(self, latency_s, bytes_per_s):
        """What the calls made so far would have cost on another link."""
        return self.round_trips * latency_s + self.bytes / bytes_per_s

    def _charge(self, payload):
        trips = max(1, -(-payload // REPLY_BYTES))
        cost = trips * self.latency_s + payload / self.bytes_per_s
        self.calls += 1
        self.round_trips += trips
        self.bytes += payload
        self.charged_s += cost
        if self.sleep:
            time.sleep(cost)

    def read(self, address, size):
        try:
            data = self.backend.read(address, size)
        except MemoryFault:
            self._charge(0)
            raise
        self._charge(len(data))
        return data

    def symbol(self, name):
        self._charge(LOOKUP_BYTES)
        return self.backend.symbol(name)

    def describe(self, address):
        self._charge(LOOKUP_BYTES)
        return self.backend.describe(address)

    def module_at(self, address):
        self._charge(LOOKUP_BYTES)
        return self.backend.module_at(address)

    def layouts(self):
        return self.backend.layouts()          # loaded from the symbols once, at connection

    def processors(self):
        self._charge(LOOKUP_BYTES)
        return self.backend.processors()

    def stack(self, thread):
        self._charge(LOOKUP_BYTES)
        return self.backend.stack(thread)

    def bugcheck(self):
        self._charge(LOOKUP_BYTES)
        return self.backend.bugcheck()
