"""A short, deterministic run of the seeded mutation fuzzer (tools/fuzz.py) over the shipped
targets and malformed files, and the failures it found, kept as regressions (issue 18).
The long run is on demand: python tools/fuzz.py --runs 10000 --seed 18 --jobs 2."""
import io
import os
import sys
import time

from pykd_ext.cli import main
from pykd_ext.target.cache import CachedTarget
from pykd_ext.target.mock import MockTarget

from conftest import ROOT, mock

sys.path.insert(0, os.path.join(ROOT, "tools"))
import fuzz  # noqa: E402


def test_a_short_fuzz_run_has_no_traceback_hang_or_slow_run():
    t0 = time.time()
    rep = fuzz.fuzz(runs=24, seed=7, files=40, jobs=1, out=None, limit=20, slow=5)
    assert (rep.tracebacks, rep.hangs, rep.slow, rep.bad_rejects) == ([], [], [], [])
    assert rep.targets == 24 and rep.files == 40
    assert time.time() - t0 < 30


def _replay(seed, run, argv):
    """Memory run `run` of `seed` rebuilt exactly as the fuzzer made it; (what it did, exit
    code, output, seconds) of `argv` on it."""
    rng = fuzz.random.Random("%d:%d" % (seed, run))
    bases = fuzz.bases()
    name, doc0, mem0 = bases[run % len(bases)]
    doc, mem, done = fuzz.mutate(doc0, mem0, rng)
    fuzz._BACKEND[0] = MockTarget(dict(doc, memory=[]), memory=[(a, bytes(b)) for a, b in mem])
    try:
        out, err = io.StringIO(), io.StringIO()
        t0 = time.time()
        code = main(argv + ["--target", "x", "--no-progress"], out=out, err=err)
        return done, code, out.getvalue(), time.time() - t0
    finally:
        fuzz._BACKEND[0] = None


def test_regression_chain_of_copied_processes_is_linear_and_its_warnings_capped():
    """Seed 3 run 275: PsActiveProcessHead redirected to 15,420 copies of a process record;
    every copy's thread list gave warnings and merging them was quadratic: powerirps took
    16 s.  Now about 3 s, the thread-list warnings capped."""
    done, code, out, secs = _replay(3, 275, ["powerirps"])
    assert "chain of 15420 records" in done[0]
    assert code == 0 and secs < 30                # 3 s on an idle machine; was 16 s
    assert "more warnings from thread lists not listed (the first 256 are)" in out


def test_regression_chain_of_copied_threads_caps_irp_list_warnings():
    """Seed 18 run 3125: a thread list redirected to 14,169 copies of a thread, each IRP list
    broken; merging their warnings one by one took powerirps 16 s.  Now about 3 s."""
    done, code, out, secs = _replay(18, 3125, ["powerirps"])
    assert "chain of 14169 records" in done[0]
    assert code == 0 and secs < 30
    assert "more warnings from thread IRP lists not listed (the first 256 are)" in out


def test_the_read_budget_turns_a_long_walk_into_partial_results_with_a_warning(monkeypatch):
    import pykd_ext.cli as cli
    real = CachedTarget.__init__

    def small(self, backend, *a, **k):
        real(self, backend, *a, **k)
        self.read_budget = 50
    monkeypatch.setattr(CachedTarget, "__init__", small)
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["deadlock", "--target", mock("eresource_deadlock"), "--no-progress"], out=out, err=err) == 0
    assert "stopped reading after 50 reads (the read budget)" in err.getvalue()
    assert "results are partial" in err.getvalue() and out.getvalue()
