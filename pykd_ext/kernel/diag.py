"""Warnings that travel with partial results: what could not be read or was cut short."""


class Diagnostic(object):
    """`kind` is one of: unreadable, loop, blink-mismatch, null-link, cap, missing-symbol,
    missing-type, inconsistent.  `address` is where it happened (or None)."""
    __slots__ = ("kind", "address", "message")

    def __init__(self, kind, message, address=None):
        self.kind = kind
        self.address = address
        self.message = message

    def __repr__(self):
        return "Diagnostic(%s, %r)" % (self.kind, self.message)

    def __str__(self):
        return self.message

    def as_dict(self):
        return {"kind": self.kind, "message": self.message,
                "address": None if self.address is None else "0x%x" % self.address}


class Diagnostics(list):
    """An ordered list of Diagnostic without repeats (the same fault seen twice is one warning)."""

    def add(self, kind, message, address=None):
        for d in self:
            if d.kind == kind and d.message == message:
                return d
        d = Diagnostic(kind, message, address)
        self.append(d)
        return d
