"""Structure layouts as data.

A LayoutSet maps type names to TypeLayouts (field offsets, sizes, types, bit fields) and enum
names to constants.  Shipped sets come from pykd_ext/layouts/<build>.json (trimmed from
Microsoft's public symbols); a live backend builds the same objects from the target's own
type information.  Analysis code asks `has()` to probe for fields, never for a build number.
"""
import json
import os

from ..errors import FieldNotFound, TypeNotFound

LAYOUT_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "layouts")


class Field(object):
    __slots__ = ("name", "offset", "size", "type", "bit_position", "bit_length")

    def __init__(self, name, offset, size, type, bit_position=None, bit_length=None):
        self.name = name
        self.offset = offset
        self.size = size
        self.type = type
        self.bit_position = bit_position
        self.bit_length = bit_length

    @property
    def is_pointer(self):
        return self.type.startswith("ptr:")

    def __repr__(self):
        return "Field(%s@0x%x:%s)" % (self.name, self.offset, self.type)


class TypeLayout(object):
    """One structure: name, size and fields by name (dotted names reach into unnamed members)."""

    def __init__(self, name, size, fields):
        self.name = name
        self.size = size
        self.fields = fields
        self.decoders = {}      # field name -> how views decode it (kernel/views.py fills it)

    @classmethod
    def from_json(cls, name, d):
        fields = {}
        for fname, f in d.get("fields", {}).items():
            fields[fname] = Field(fname, f["offset"], f["size"], f["type"],
                                  f.get("bit_position"), f.get("bit_length"))
        for fname, f in d.get("nested_fields", {}).items():
            fields.setdefault(fname, Field(fname, f["offset"], f["size"], f["type"],
                                           f.get("bit_position"), f.get("bit_length")))
        return cls(name, d["size"], fields)

    def has(self, name):
        return name in self.fields

    def field(self, name):
        try:
            return self.fields[name]
        except KeyError:
            raise FieldNotFound(self.name, name)

    def offset(self, name):
        return self.field(name).offset

    def to_json(self):
        out = {}
        for f in self.fields.values():
            d = {"offset": f.offset, "size": f.size, "type": f.type}
            if f.bit_length is not None:
                d["bit_position"] = f.bit_position
                d["bit_length"] = f.bit_length
            out[f.name] = d
        return {"kind": "struct", "size": self.size, "fields": out}


class LayoutSet(object):
    def __init__(self, build, pointer_size, structs, enums, base_types=None, aliases=None):
        self.build = build
        self.pointer_size = pointer_size
        self._raw = structs
        self._types = {}
        self.enums = enums
        self.base_types = base_types or {}
        self.aliases = aliases or {}
        self._names = {}

    def layout(self, name):
        name = name.split("!")[-1]
        t = self._types.get(name)
        if t is not None:
            return t
        raw = self._raw.get(name)
        if raw is None and name in self.aliases:
            raw = self._raw.get(self.aliases[name])
        if raw is None:
            raise TypeNotFound("nt!" + name)
        t = self._types[name] = TypeLayout.from_json(name, raw)
        return t

    def has_type(self, name):
        """Whether layout(name) gives a layout (for every LayoutSet: shipped, live, recording)."""
        try:
            self.layout(name)
            return True
        except TypeNotFound:
            return False

    def enum(self, name):
        e = self.enums.get(name.split("!")[-1])
        if e is None:
            raise TypeNotFound("nt!" + name)
        return e["constants"] if "constants" in e else e

    def enum_names(self, name):
        """{value: constant name} of an enum ({} when the build lacks it), built once."""
        names = self._names.get(name)
        if names is None:
            try:
                names = {v: k for k, v in self.enum(name).items()}
            except TypeNotFound:
                names = {}
            self._names[name] = names
        return names

    def to_json(self):
        return {"build": self.build, "pointer_size": self.pointer_size, "structs": self._raw,
                "enums": self.enums, "base_types": self.base_types, "aliases": self.aliases}

    @classmethod
    def from_json(cls, d):
        return cls(d["build"], d["pointer_size"], d["structs"], d["enums"], d.get("base_types"),
                   d.get("aliases"))


_SUPPLEMENT = None


def supplement():
    global _SUPPLEMENT
    if _SUPPLEMENT is None:
        with open(os.path.join(LAYOUT_DIR, "supplement.json")) as f:
            _SUPPLEMENT = json.load(f)
    return _SUPPLEMENT


def shipped_builds():
    return sorted(n[:-5] for n in os.listdir(LAYOUT_DIR)
                  if n.endswith(".json") and n != "supplement.json")


_CACHE = {}


def load_shipped(build):
    """The shipped LayoutSet of `build` (a file name under pykd_ext/layouts without .json)."""
    if build in _CACHE:
        return _CACHE[build]
    path = os.path.join(LAYOUT_DIR, build + ".json")
    if not os.path.isfile(path):
        raise TypeNotFound("layout set %r (shipped: %s)" % (build, ", ".join(shipped_builds())))
    with open(path) as f:
        d = json.load(f)
    structs = dict(d["structs"])
    for name, s in supplement()["structs"].items():
        structs.setdefault(name, s)
    aliases = {k: v["alias_of"] for k, v in d.get("type_aliases", {}).items()}
    ls = LayoutSet(d["build"], d["pointer_size"], structs, d["enums"], d.get("base_types"), aliases)
    _CACHE[build] = ls
    return ls
