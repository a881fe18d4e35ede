"""Triage many targets at once (issue 16, point 7): every mock target or recording given (files,
or folders searched for *.json / *.json.gz), each triaged in a worker process, one JSON line per
target on stdout as it finishes, then a summary table grouped by signature.  A target that
cannot be read is one error line; the rest go on.

    python -m pykd_ext.batch mock_targets/ --jobs 2
    python -m pykd_ext.batch case1.json.gz case2.json.gz --summary-only
"""
import argparse
import io
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor

from tabulate import tabulate


def targets_in(paths):
    out = []
    for p in paths:
        if os.path.isdir(p):
            for name in sorted(os.listdir(p)):
                if name.endswith(".json") or name.endswith(".json.gz"):
                    out.append(os.path.join(p, name))
        else:
            out.append(p)
    return out


def triage_one(path):
    """(path, document or None, error line or None): `pykd-ext triage --format json` on one target."""
    from .cli import main
    out, err = io.StringIO(), io.StringIO()
    code = main(["triage", "--target", path, "--format", "json", "--no-progress"], out=out, err=err)
    if code not in (0, 3):                  # 3: a partial reading, its document says complete: false
        return path, None, (err.getvalue().strip().splitlines() or ["exit %d" % code])[0]
    return path, json.loads(out.getvalue()), None


def run(paths, jobs, write, summary_only=False):
    files = targets_in(paths)
    rows = []
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        for path, doc, error in pool.map(triage_one, files):
            if error is not None:
                line = {"target": path, "error": error}
            else:
                v = doc["verdict"]
                line = {"target": path, "signature": doc["signature"], "module": v["module"],
                        "what": v["what"], "complete": doc["complete"]}
            rows.append(line)
            if not summary_only:
                write(json.dumps(line) + "\n")
    groups = {}
    for r in rows:
        groups.setdefault(r.get("signature") or "ERROR", []).append(r)
    # a partial reading (a list that loops, an unreadable structure) may have grouped a dump
    # under the wrong signature: the table says how many of each group were read only in part
    table = [[sig, len(rs), sum(1 for r in rs if r.get("complete") is False),
              ", ".join(os.path.basename(r["target"]) for r in rs[:4]) + (" ..." if len(rs) > 4 else "")]
             for sig, rs in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))]
    partial = sum(1 for r in rows if r.get("complete") is False)
    errors = sum(1 for r in rows if "error" in r)
    write("\n%d targets, %d signatures, %d read in part, %d not readable\n" % (len(rows), len(groups), partial,
                                                                                 errors))
    write(tabulate(table, headers=["signature", "targets", "partial", "examples"], tablefmt="simple",
                   disable_numparse=True) + "\n")
    return groups


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m pykd_ext.batch", description=__doc__.split("\n\n")[0])
    p.add_argument("paths", nargs="+", help="mock targets or recordings, or folders of them")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    p.add_argument("--summary-only", action="store_true", help="only the table grouped by signature")
    args = p.parse_args(argv)
    run(args.paths, args.jobs, sys.stdout.write, args.summary_only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
