"""A typed view of one structure at an address, decoded from cached bytes by its layout.

    t = Struct(target, "_KTHREAD", addr)
    t["State"], t.has("WaitBlockCount"), t.address_of("WaitBlock"), t.sub("Header")

The whole structure is read once (one cache read); if that faults, fields are read one by
one so that the readable ones still decode, and the faulting field raises MemoryFault.
Structures larger than a page (_KPRCB is 11 pages on 10) are always read field by field:
the page cache makes each a page at most, and only the pages of the fields used are touched.
A target whose `whole_structures` is False gets every field read on its own (the
benchmark's naive reader: what pykd's typedVar does, one call per field).
"""
import struct

from ..errors import MemoryFault

_UNPACK = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}
WHOLE_READ_MAX = 0x1000      # larger structures are read field by field (through the page cache)
_UNPACK_SIGNED = {1: "<b", 2: "<h", 4: "<i", 8: "<q"}


class Struct(object):
    __slots__ = ("target", "layout", "address", "_raw")

    def __init__(self, target, typename, address, raw=None):
        self.target = target
        self.layout = target.layouts().layout(typename) if isinstance(typename, str) else typename
        self.address = address
        self._raw = raw

    @property
    def typename(self):
        return self.layout.name

    @property
    def size(self):
        return self.layout.size

    def has(self, name):
        return self.layout.has(name)

    def offset(self, name):
        return self.layout.offset(name)

    def address_of(self, name):
        return self.address + self.layout.offset(name)

    def _bytes(self, f):
        if self._raw is None and (self.layout.size > WHOLE_READ_MAX or not self.target.whole_structures):
            self._raw = False          # a _KPRCB or _KUSER_SHARED_DATA: read the fields asked for
        if self._raw is None:
            try:
                self._raw = self.target.read(self.address, self.layout.size)
            except MemoryFault:
                self._raw = False
        if self._raw is not False and f.offset + f.size <= len(self._raw):
            return self._raw[f.offset:f.offset + f.size]
        return self.target.read(self.address + f.offset, f.size)

    def _decoder(self, name):
        """(offset, size, unpack or None for "its address", bit position, mask), worked out
        once per layout and field: this is the hottest path of every scan."""
        f = self.layout.field(name)
        t = f.type
        base_types = self.target.layouts().base_types
        scalar = t.startswith("ptr:") or t.startswith("enum:") or t in base_types
        if not scalar or t.endswith("]") or f.size not in _UNPACK:
            d = (f.offset, f.size, None, 0, 0)
        else:
            signed = (f.bit_length is None and not t.startswith("ptr:")
                      and base_types.get(t, {}).get("signed", False))
            unpack = struct.Struct((_UNPACK_SIGNED if signed else _UNPACK)[f.size]).unpack_from
            mask = (1 << f.bit_length) - 1 if f.bit_length is not None else 0
            d = (f.offset, f.size, unpack, f.bit_position or 0, mask)
        self.layout.decoders[name] = d
        return d

    def __getitem__(self, name):
        """A scalar field (integer, pointer, enum, bit field) decoded; for an embedded
        structure or an array, its address (use raw() for an array's bytes)."""
        d = self.layout.decoders.get(name) or self._decoder(name)
        off, size, unpack, shift, mask = d
        if unpack is None:
            return self.address + off
        raw = self._raw
        if raw and off + size <= len(raw):
            v = unpack(raw, off)[0]
        else:
            v = unpack(self._bytes(self.layout.fields[name]))[0]
        return (v >> shift) & mask if mask else v

    def raw(self, name):
        """The bytes of field `name` as stored."""
        return self._bytes(self.layout.field(name))

    def get(self, name, default=None):
        """The field's value, or `default` when the layout has no such field."""
        if not self.layout.has(name):
            return default
        return self[name]

    def sub(self, name, typename=None):
        """A view of the embedded structure `name` (type from the layout unless given)."""
        f = self.layout.field(name)
        v = Struct(self.target, typename or f.type, self.address + f.offset)
        if self._raw is None and self.layout.size <= WHOLE_READ_MAX and self.target.whole_structures:
            self._bytes(f)                     # read the parent once, then slice it
        if self._raw and f.offset + v.layout.size <= len(self._raw):
            v._raw = self._raw[f.offset:f.offset + v.layout.size]
        return v

    def __repr__(self):
        return "<%s @ 0x%x>" % (self.layout.name, self.address)

