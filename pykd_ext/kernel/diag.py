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
    """An ordered list of Diagnostic without repeats (the same fault seen twice is one warning).
    Repeats are found through an index of (kind, message), so adding n warnings costs O(n), not
    O(n^2): a corrupt target can produce tens of thousands (the fuzzer's chains of copied
    records did, and the list scan made `deadlock` take 52 s)."""

    def __init__(self, items=()):
        list.__init__(self)
        self._index = {}
        self.extend(items)

    def add(self, kind, message, address=None):
        d = self._index.get((kind, message))
        if d is not None:
            return d
        d = Diagnostic(kind, message, address)
        list.append(self, d)
        self._index[(kind, message)] = d
        return d

    def append(self, d):
        key = (d.kind, d.message)
        if key not in self._index:
            list.append(self, d)
            self._index[key] = d

    def extend(self, items):
        for d in items:
            self.append(d)

    def __contains__(self, d):
        return (getattr(d, "kind", None), getattr(d, "message", None)) in self._index

    def __iadd__(self, items):
        self.extend(items)
        return self
