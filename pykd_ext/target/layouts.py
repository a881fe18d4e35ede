"""Structure layouts as data.

A LayoutSet maps type names to TypeLayouts (field offsets, sizes, types, bit fields) and enum
names to constants.  Shipped sets come from pykd_ext/layouts/<build>.json (trimmed from
Microsoft's public symbols); a live backend builds the same objects from the target's own
type information.  Analysis code asks `has()` to probe for fields, never for a build number.
"""
import json
import os
import re

from ..errors import FieldNotFound, TypeNotFound

LAYOUT_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "layouts")

# Bounds a layout set is checked against (check_layouts).  The largest structure shipped is
# Windows 11's _KPRCB (49,280 bytes); a megabyte leaves room for any build without letting a
# file make the views read (or allocate) gigabytes for one structure.
MAX_STRUCT_SIZE = 1 << 20
BASE_TYPE_SIZES = (0, 1, 2, 4, 8, 16)        # void, char ... long long, a 16-byte scalar
MAX_TYPE_NAME = 512                          # characters: a C++ template name is long, not this long
_ARRAY = re.compile(r"^(.+)\[(\d+)\]$")


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


def _where(path, key):
    """`path` extended by a key, as a JSON path people can follow."""
    if isinstance(key, int):
        return "%s[%d]" % (path, key)
    if re.match(r"^[A-Za-z0-9_]+$", key):
        return "%s.%s" % (path, key) if path else key
    return "%s[%s]" % (path, json.dumps(key))       # ensure_ascii: one printable line


def show(v):
    """A JSON value in an error line: short, one line, ASCII."""
    if isinstance(v, dict):
        return "an object"
    if isinstance(v, list):
        return "a list"
    text = json.dumps(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _int(v, where, lo=0, hi=None):
    if type(v) is not int:                        # not bool, not float: JSON true and 1.0 are not offsets
        raise ValueError("%s: expected an integer, got %s" % (where, show(v)))
    if v < lo or (hi is not None and v > hi):
        raise ValueError("%s: %s is out of range (%d to %s)" % (where, show(v), lo, "any" if hi is None else hi))
    return v


def _dict(v, where):
    if not isinstance(v, dict):
        raise ValueError("%s: expected an object, got %s" % (where, show(v)))
    return v


def _str(v, where):
    if not isinstance(v, str) or not v:
        raise ValueError("%s: expected a non-empty string, got %s" % (where, show(v)))
    return v


def _check_type_name(t, where, base_types, pointer_size, size):
    """A field's type: `ptr:X` (a pointer's size), `enum:X`, `X[n]`, a base type (its size), or a
    structure name (any printable string: a debugger's type names include "<unnamed-tag>").  A structure the set does not hold is allowed: shipped sets and recordings
    are trimmed to the structures the analyses read (each shipped set names 73-105 structure
    types it does not hold), and a view of one raises TypeNotFound, the "unusable target" exit."""
    _str(t, where)
    if _ARRAY.match(t):
        return
    if t.startswith("ptr:"):
        if size is not None and size != pointer_size:
            raise ValueError("%s: a pointer of %d bytes in a set whose pointers are %d" % (where, size, pointer_size))
        return
    if t.startswith("enum:"):
        _str(t[5:], where)
        return
    if t in base_types:
        want = base_types[t]["size"]
        if want and size is not None and size != want:
            raise ValueError("%s: %s is %d bytes, the field says %d" % (where, t, want, size))
        return
    if len(t) > MAX_TYPE_NAME or not t.isprintable():   # debuggers name types "<unnamed-tag>", "void *"...
        raise ValueError("%s: %s is not a type name" % (where, show(t)))


def _check_field(f, where, struct_size, base_types, pointer_size):
    _dict(f, where)
    for k in ("offset", "size", "type"):
        if k not in f:
            raise ValueError("%s: no %s" % (where, k))
    off = _int(f["offset"], where + ".offset", 0, MAX_STRUCT_SIZE)
    size = _int(f["size"], where + ".size", 0, MAX_STRUCT_SIZE)
    if off + size > struct_size:
        raise ValueError("%s: bytes 0x%x..0x%x lie outside the structure's 0x%x" % (where, off, off + size, struct_size))
    bp, bl = f.get("bit_position"), f.get("bit_length")
    if bl is not None or bp is not None:
        bp = _int(bp if bp is not None else 0, where + ".bit_position", 0, 8 * size)
        bl = _int(bl, where + ".bit_length", 1, 64)
        if size not in (1, 2, 4, 8) or bp + bl > 8 * size:
            raise ValueError("%s: bits %d..%d do not fit in its %d bytes" % (where, bp, bp + bl, size))
    _check_type_name(f["type"], where + ".type", base_types, pointer_size, size if bl is None else None)


def check_layouts(d, where="layouts"):
    """Check a layout set's JSON completely (everything the views, walks and renderers will
    rely on) and return the LayoutSet; ValueError names the JSON path of the first bad place."""
    _dict(d, where)
    for k in ("build", "pointer_size", "structs", "enums"):
        if k not in d:
            raise ValueError("%s: no %s" % (where, k))
    build = _str(d["build"], _where(where, "build"))
    ps = d["pointer_size"]
    if type(ps) is not int or ps not in (4, 8):
        raise ValueError("%s: expected 4 or 8, got %s" % (_where(where, "pointer_size"), show(ps)))
    base_types = _dict(d.get("base_types") or {}, _where(where, "base_types"))
    for n, b in base_types.items():
        w = _where(_where(where, "base_types"), n)
        _dict(b, w)
        size = _int(b.get("size"), w + ".size")
        if size not in BASE_TYPE_SIZES:
            raise ValueError("%s.size: a base type of %d bytes" % (w, size))
        if not isinstance(b.get("signed", False), bool):
            raise ValueError("%s.signed: expected true or false" % w)
    structs = _dict(d["structs"], _where(where, "structs"))
    for n, s in structs.items():
        w = _where(_where(where, "structs"), n)
        _dict(s, w)
        size = _int(s.get("size"), w + ".size", 0, MAX_STRUCT_SIZE)
        for kind in ("fields", "nested_fields"):
            fields = _dict(s.get(kind, {}), _where(w, kind))
            for fname, f in fields.items():
                _check_field(f, _where(_where(w, kind), fname), size, base_types, ps)
    enums = _dict(d["enums"], _where(where, "enums"))
    for n, e in enums.items():
        w = _where(_where(where, "enums"), n)
        consts = _dict(_dict(e, w).get("constants"), w + ".constants")
        for c, v in consts.items():
            _int(v, _where(w + ".constants", c), -(1 << 63), (1 << 64) - 1)
    aliases = _dict(d.get("aliases") or {}, _where(where, "aliases"))
    for n, a in aliases.items():
        if not isinstance(a, str) or a not in structs:
            raise ValueError("%s: an alias of %s, which is not a structure of this set"
                             % (_where(_where(where, "aliases"), n), show(a)))
    return LayoutSet(build, ps, structs, enums, base_types, aliases)


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
    if isinstance(build, str) and build in _CACHE:
        return _CACHE[build]
    if not isinstance(build, str) or build not in shipped_builds():     # not "supplement", not a path
        raise TypeNotFound("layout set %s (shipped: %s)" % (json.dumps(build)[:60], ", ".join(shipped_builds())))
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
