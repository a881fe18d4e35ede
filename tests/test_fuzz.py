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


def _chain_run(base, pointer, n, argv, stride_before=0x200, stride_after=0x200):
    """The fuzzer's long-chain mutation (tools/fuzz.py m_chain), made deterministic: the
    pointer at `pointer` is redirected to `n` copies of the record around the link it points
    at, each copy's Flink to the next and Blink to the previous, the last one looping back
    mid-way.  (What the fuzzer found these with depended on the shipped targets' bytes, which
    change when they are regenerated; this builds the same shape from any base.)"""
    _, doc, mem = next(b for b in fuzz.bases() if b[0] == base)
    mem = [(a, bytearray(b)) for a, b in mem]
    i = next(k for k, (a, b) in enumerate(mem) if a <= pointer < a + len(b))
    off = pointer - mem[i][0]
    v = int.from_bytes(mem[i][1][off:off + 8], "little")
    j = next(k for k, (a, b) in enumerate(mem) if a <= v < a + len(b))
    ja, jb = mem[j]
    lo = max(ja, v - stride_before) & ~0xf
    hi = min(ja + len(jb), v + stride_after)
    tmpl = bytes(jb[lo - ja:hi - ja])
    stride = (len(tmpl) + 0xf) & ~0xf
    base_addr = fuzz._fresh(mem, n * stride)
    buf = bytearray(tmpl.ljust(stride, b"\0") * n)
    link = v - lo
    for k in range(n):
        nxt = base_addr + (k + 1) * stride + link if k < n - 1 else base_addr + (n // 2) * stride + link
        prv = base_addr + (k - 1) * stride + link if k else pointer
        buf[k * stride + link:k * stride + link + 8] = nxt.to_bytes(8, "little")
        buf[k * stride + link + 8:k * stride + link + 16] = prv.to_bytes(8, "little")
    mem.append((base_addr, buf))
    fuzz._put(mem, i, off, base_addr + link)
    fuzz._BACKEND[0] = MockTarget(dict(doc, memory=[]), memory=[(a, bytes(b)) for a, b in mem])
    try:
        out, err = io.StringIO(), io.StringIO()
        t0 = time.process_time()
        code = main(argv + ["--target", "x", "--no-progress"], out=out, err=err)
        return code, out.getvalue(), time.process_time() - t0
    finally:
        fuzz._BACKEND[0] = None


def test_regression_chain_of_copied_processes_is_linear_and_its_warnings_capped():
    """Found by the fuzzer (seed 3 run 275): PsActiveProcessHead redirected to 15,420 copies
    of a process record; every copy's thread list gave warnings and merging them was
    quadratic: powerirps took 16 s.  Now a few seconds, the thread-list warnings capped."""
    t = MockTarget.load(mock("power_9f3_filter"))
    code, out, secs = _chain_run("power_9f3_filter", t.symbol("nt!PsActiveProcessHead"), 15420, ["powerirps"])
    assert code == 3 and secs < 30                # CPU seconds; was 16 s before the caps; 3: partial
    assert "more warnings from thread lists not listed (the first 256 are)" in out


def test_regression_chain_of_copied_threads_caps_irp_list_warnings():
    """Found by the fuzzer (seed 18 run 3125): a thread list redirected to 14,169 copies of a
    thread, each IRP list broken; merging their warnings one by one took powerirps 16 s."""
    from pykd_ext.kernel.processes import processes
    from pykd_ext.target.cache import CachedTarget as _C
    t = _C(MockTarget.load(mock("power_9f3_filter")))
    system = [p for p in processes(t).items if p.name == "System"][0]
    head = system.address + t.layouts().layout("_EPROCESS").offset("ThreadListHead")
    code, out, secs = _chain_run("power_9f3_filter", head, 14169, ["powerirps"], 0x300, 0x500)
    assert code == 3 and secs < 30                # the broken IRP lists: partial results
    assert "more warnings from thread IRP lists not listed (the first 256 are)" in out


def test_the_read_budget_turns_a_long_walk_into_partial_results_with_a_warning(monkeypatch):
    import pykd_ext.cli as cli
    real = CachedTarget.__init__

    def small(self, backend, *a, **k):
        real(self, backend, *a, **k)
        self.read_budget = 50
    monkeypatch.setattr(CachedTarget, "__init__", small)
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["deadlock", "--target", mock("eresource_deadlock"), "--no-progress"], out=out, err=err) == 3
    assert "stopped reading after 50 reads (the read budget)" in err.getvalue()
    assert out.getvalue().splitlines()[1].startswith("INTERRUPTED (read budget): partial results") or \
        out.getvalue().splitlines()[1].startswith("PARTIAL RESULTS: ")
    assert "results are partial" in err.getvalue() and out.getvalue()
