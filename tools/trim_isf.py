"""Trim the Volatility 3 ISF files of ../shared/layouts to what the test suite's fake pykd needs.

Source: /work/shared/layouts/<build>.isf.json (see SOURCES.md there): JPCERTCC/Windows-Symbol-Tables
at commit 11ad856cd9fb1dea9a007f6c56fb33b8c7e6e3e1, Volatility 3 2.7.0 `pdbconv` output for
Microsoft's public ntkrnlmp.pdb, already trimmed there to the requested structures and their
by-value closure.

Kept, with every type description untouched (pointers, arrays, bit fields, unions, anonymous
types, `_KSYSTEM_TIME` and the like stay as the PDB gives them):
- the user types the package's layouts name (pykd_ext/layouts/<build>.json `structs`), plus every
  type they contain by value (struct/union members, array elements), transitively;
- the enums those types reference, and the enums the package's layouts carry;
- all base types and the metadata.
Dropped: symbols (the fake takes addresses from the mock target) and the types reached only
through pointers (a pointer still names its target type).

    python tools/trim_isf.py [--shared DIR] [--out DIR]

Writes tests/data/isf/<build>.isf.json.gz (gzip with mtime 0: the same input gives the same bytes).
"""
import argparse
import gzip
import io
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "layouts")
LAYOUTS = os.path.join(ROOT, "pykd_ext", "layouts")
OUT = os.path.join(ROOT, "tests", "data", "isf")


def _walk(t, users, enums):
    """Collect the user types `t` holds by value and the enums it names."""
    kind = t["kind"]
    if kind in ("struct", "union", "class"):
        users.append(t["name"])
    elif kind == "enum":
        enums.add(t["name"])
    elif kind == "array":
        _walk(t["subtype"], users, enums)
    elif kind == "bitfield":
        _walk(t["type"], users, enums)
    elif kind == "pointer":
        sub = t["subtype"]
        while sub["kind"] in ("pointer", "array"):
            sub = sub["subtype"]
        if sub["kind"] == "enum":
            enums.add(sub["name"])


def trim(isf, wanted, extra_enums):
    types = isf["user_types"]
    keep, enums, work = {}, set(extra_enums), list(wanted)
    while work:
        name = work.pop()
        if name in keep:
            continue
        if name not in types:
            raise KeyError("%s is not in the ISF" % name)
        keep[name] = types[name]
        found = []
        for f in types[name]["fields"].values():
            _walk(f["type"], found, enums)
        work.extend(found)
    return {
        "metadata": isf["metadata"],
        "base_types": isf["base_types"],
        "user_types": {n: keep[n] for n in sorted(keep)},
        "enums": {n: isf["enums"][n] for n in sorted(enums) if n in isf["enums"]},
        "symbols": {},
    }


def write(data, path):
    raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as g:
        g.write(raw)
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    return len(buf.getvalue())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=SHARED, help="directory of the <build>.isf.json files")
    ap.add_argument("--out", default=OUT)
    a = ap.parse_args(argv)
    builds = sorted(n[:-5] for n in os.listdir(LAYOUTS) if n.endswith(".json") and n != "supplement.json")
    for build in builds:
        with open(os.path.join(LAYOUTS, build + ".json")) as f:
            ours = json.load(f)
        with open(os.path.join(a.shared, build + ".isf.json")) as f:
            isf = json.load(f)
        out = trim(isf, ours["structs"], ours.get("enums", {}))
        size = write(out, os.path.join(a.out, build + ".isf.json.gz"))
        sys.stdout.write("%s: %d user types, %d enums, %d bytes gzip\n"
                         % (build, len(out["user_types"]), len(out["enums"]), size))


if __name__ == "__main__":
    main()
