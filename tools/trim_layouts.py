#!/usr/bin/env python3
"""Trim the layout files in ../shared/layouts to what pykd_ext reads, and ship them.

    python tools/trim_layouts.py ../shared/layouts pykd_ext/layouts

Keeps the structures listed in NEEDED (all their fields and nested_fields, verbatim), the
enums listed in ENUMS, base types, pointer size, build name, the names of present/absent
globals and the source notes.  Nothing is computed: offsets stay as the source gave them.
Where a build's PDB lacks an enum whose values never changed (Windows 7 has no
_KTHREAD_STATE), the values are copied from the nearest newer build and the copy is marked
under "enum_sources".
"""
import json
import os
import sys

NEEDED = [
    "_LIST_ENTRY", "_SINGLE_LIST_ENTRY", "_UNICODE_STRING", "_CLIENT_ID", "_LARGE_INTEGER",
    "_DISPATCHER_HEADER", "_KEVENT", "_KSEMAPHORE", "_KMUTANT", "_KGATE", "_FAST_MUTEX",
    "_KGUARDED_MUTEX", "_EX_PUSH_LOCK", "_ERESOURCE", "_OWNER_ENTRY",
    "_KTHREAD", "_ETHREAD", "_KPROCESS", "_EPROCESS", "_KWAIT_BLOCK", "_KLOCK_ENTRY",
    "_KAPC_STATE", "_KPRCB", "_KPCR", "_KDPC", "_KDPC_DATA", "_KDPC_LIST",
    "_KSPIN_LOCK_QUEUE", "_KTIMER", "_IRP", "_IO_STACK_LOCATION", "_IO_STATUS_BLOCK",
    "_DEVICE_OBJECT", "_DRIVER_OBJECT", "_DRIVER_EXTENSION", "_DEVOBJ_EXTENSION",
    "_DEVICE_NODE", "_POWER_STATE", "_POP_IRP_DATA", "_OBJECT_HEADER",
]
ENUMS = [
    "_KTHREAD_STATE", "_KWAIT_REASON", "_KOBJECTS", "_KWAIT_BLOCK_STATE", "_MODE",
    "_POWER_STATE_TYPE", "_SYSTEM_POWER_STATE", "_DEVICE_POWER_STATE", "_PNP_DEVNODE_STATE",
    "POWER_ACTION", "_DEVICE_RELATION_TYPE",
]
ORDER = ["win7sp1", "win81", "win10", "win11"]


def main(src, dst):
    names = sorted(f for f in os.listdir(src) if f.endswith(".json") and not f.endswith(".isf.json"))
    names.sort(key=lambda n: ORDER.index(n.split("-")[0]))
    loaded = [(n, json.load(open(os.path.join(src, n)))) for n in names]
    os.makedirs(dst, exist_ok=True)
    for i, (name, d) in enumerate(loaded):
        out = {
            "build": d["build"],
            "os": d["os"],
            "source": d["source"],
            "pointer_size": d["pointer_size"],
            "base_types": d["base_types"],
            "structs": {k: d["structs"][k] for k in NEEDED if k in d["structs"]},
            "enums": {},
            "enum_sources": {},
            "type_aliases": d.get("type_aliases_from_other_sources", {}),
            "globals_present": d["globals_present"],
            "globals_absent": d["globals_absent"],
            "source_gaps": d.get("source_gaps", []),
        }
        for e in ENUMS:
            if e in d["enums"]:
                out["enums"][e] = d["enums"][e]
                continue
            for _, newer in loaded[i + 1:]:
                if e in newer["enums"]:
                    out["enums"][e] = newer["enums"][e]
                    out["enum_sources"][e] = ("not in this PDB; values copied from %s "
                                              "(unchanged across the builds that have it)" % newer["build"])
                    break
        path = os.path.join(dst, d["build"] + ".json")
        with open(path, "w") as f:
            f.write("{\n")
            items = list(out.items())
            for j, (k, v) in enumerate(items):
                f.write(json.dumps(k) + ": ")
                if k in ("structs", "enums"):
                    f.write("{\n" + ",\n".join("  %s: %s" % (json.dumps(sk), json.dumps(sv, sort_keys=True))
                                               for sk, sv in v.items()) + "\n}")
                else:
                    f.write(json.dumps(v))
                f.write(",\n" if j < len(items) - 1 else "\n")
            f.write("}\n")
        print("%s: %d structs, %d enums, %d bytes" % (path, len(out["structs"]), len(out["enums"]), os.path.getsize(path)))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
