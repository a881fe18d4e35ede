"""Triage many targets at once (issue 16, point 7): every shipped target in worker processes,
one JSON line each, grouped by signature; a bad target is one error line, the rest go on."""
import json
import os

from pykd_ext import batch

from conftest import MOCKS


def test_all_shipped_targets_in_parallel_grouped_by_signature(tmp_path):
    bad = tmp_path / "broken.json.gz"
    bad.write_bytes(b"not gzip")
    lines = []
    groups = batch.run([MOCKS, str(bad)], 2, lines.append)
    rows = [json.loads(l) for l in lines if l.startswith("{")]
    shipped = [f for f in os.listdir(MOCKS) if f.endswith(".json.gz")]
    assert len(rows) == len(shipped) + 1
    errors = [r for r in rows if "error" in r]
    assert [os.path.basename(e["target"]) for e in errors] == ["broken.json.gz"]
    assert errors[0]["error"].startswith("pykd-ext: ")
    by_name = {os.path.basename(r["target"]): r for r in rows if "error" not in r}
    assert by_name["power_9f4_zteusbnet.json.gz"]["signature"] == "0x9F_4_ZTEusbnet.sys"
    assert by_name["pushlock_recursive_win11.json.gz"]["module"] == "FsFilter.sys"
    assert len(groups["NO_BUGCHECK_TestDriver.sys!FileMoveThread"]) >= 3     # the seed 001 family
    assert "signature" in "".join(lines) and "targets" in "".join(lines)
    # the summary says how many of each group were read only in part (the corrupted fixtures)
    summary = "".join(l for l in lines if not l.startswith("{"))
    partial = sorted(os.path.basename(r["target"]) for r in rows if r.get("complete") is False)
    assert partial and all(p.startswith("corrupt_") for p in partial)
    assert "%d read in part, 1 not readable" % len(partial) in summary
    row = next(l for l in summary.splitlines() if l.startswith("NO_BUGCHECK_TestDriver.sys!FileMoveThread"))
    assert row.split()[1:3] == [str(len(groups["NO_BUGCHECK_TestDriver.sys!FileMoveThread"])),
                                str(sum(1 for r in groups["NO_BUGCHECK_TestDriver.sys!FileMoveThread"]
                                        if r.get("complete") is False))]
