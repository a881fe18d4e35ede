"""timerres faithful to the kernel (issue 13): who sets the clock.

The builder plays NtSetTimerResolution / ExSetTimerResolution / ExpUpdateTimerResolution
(decompiled x64 ntoskrnl; see pykd_ext/mock/kernel/timers.py), so each target below holds what
the kernel writes.  The report must name the live requester that sets the clock, never blame a
stale entry (asked once: Requested 0, its Smallest is history), report the drivers' request
(nt!ExpKernelRequestedTimerResolution), and say when the clock is finer than every live
request (a requester not on the list) or coarser than one (not honoured / ignored)."""
import json
import struct

import pytest

from pykd_ext.mock.builder import ScenarioBuilder
from pykd_ext.mock.scenarios import (timerres_coarser_ignored, timerres_driver_finer,
                                     timerres_stale_and_live)

from conftest import BUILDS, WIN10, WIN11, mock, run_cli

IGNORE_BUILDS = [WIN10, WIN11]          # _EPROCESS.Flags3.TimerResolutionIgnore exists there


def report(b, tmp_path, fmt="json"):
    path = str(tmp_path / "t.json.gz")
    b.save(path)
    code, out, err = run_cli("timerres", "--target", path, "--format", fmt, "--no-color")
    assert code == 0 and err == "" and "Traceback" not in out
    return json.loads(out) if fmt == "json" else out


def row(d, name):
    [r] = [r for r in d["rows"] if r["process"] == name]
    return r


def u32(b, name):
    return struct.unpack("<I", b.mem.read(b.symbols[name], 4))[0]


# -- the builder writes what the kernel routines write ---------------------------------------------

@pytest.mark.parametrize("build", BUILDS)
def test_builder_plays_nt_set_timer_resolution(build):
    b = ScenarioBuilder(build)
    b.process("System", 4)
    a, c = b.process("a.exe", 0x10), b.process("c.exe", 0x20)
    assert b.set_timer_resolution(a, 10000) == 10000                 # first request: finer than 15.625 ms
    assert b.set_timer_resolution(c, 1000) == 5000                   # clamped to KeMinimumIncrement
    assert b.set_timer_resolution(a, 7000) == 5000                   # a running minimum of a's requests
    assert b.set_timer_resolution(a, 20000) == 5000                  # coarser request: Smallest stays
    link = b.off("_EPROCESS", "TimerResolutionLink")
    head = b.timer_res_head
    assert b._u64(head) == c + link and b._u64(c + link) == a + link  # inserted at the head, once each
    assert b._u64(a + link) == head and b._u64(head + 8) == a + link
    lay = b.layouts.layout("_EPROCESS")
    flags = b._u32(a + lay.offset("Flags"))
    assert flags & 0x1000 and flags & 0x80000000                     # SetTimerResolution, ..Link
    assert b._u32(a + lay.offset("RequestedTimerResolution")) == 20000
    assert b._u32(a + lay.offset("SmallestTimerResolution")) == 7000
    assert b._u64(a + lay.offset("TimerResolutionStackRecord")) != 0
    assert u32(b, "nt!ExpTimerResolutionCount") == 2
    assert b.set_timer_resolution(c, 0, set=False) == 20000          # recomputed from a's live 20000
    assert b._u32(c + lay.offset("Flags")) & 0x1000 == 0 and b._u32(c + lay.offset("RequestedTimerResolution")) == 0
    assert b._u32(c + lay.offset("SmallestTimerResolution")) == 1000  # history stays, and so does the entry
    assert b._u64(head) == c + link and u32(b, "nt!ExpTimerResolutionCount") == 1
    assert b.set_timer_resolution(c, 0, set=False) == 20000          # not set: nothing changes
    assert b.set_timer_resolution(a, 0, set=False) == 156250         # nobody asks: KeMaximumIncrement
    assert u32(b, "nt!ExpTimerResolutionCount") == 0


@pytest.mark.parametrize("build", BUILDS)
def test_builder_plays_ex_set_timer_resolution(build):
    b = ScenarioBuilder(build)
    p = b.process("a.exe", 0x10)
    b.set_timer_resolution(p, 10000)
    assert b.ex_set_timer_resolution(5000) == 5000
    assert b.ex_set_timer_resolution(8000) == 5000                   # a coarser driver request changes nothing
    assert (u32(b, "nt!ExpKernelResolutionCount"), u32(b, "nt!ExpKernelRequestedTimerResolution")) == (2, 5000)
    assert b.ex_set_timer_resolution(0, set=False) == 5000           # one of two closes: still 5000
    assert b.ex_set_timer_resolution(0, set=False) == 10000          # the last closes: a.exe's 1 ms
    assert (u32(b, "nt!ExpKernelResolutionCount"), u32(b, "nt!ExpKernelRequestedTimerResolution")) == (0, 0)
    assert u32(b, "nt!ExpTimerResolutionCount") == 1                 # drivers do not count as processes


# -- the report --------------------------------------------------------------------------------------

@pytest.mark.parametrize("build", BUILDS)
def test_live_requester_named_and_stale_one_not_blamed(build, tmp_path):
    d = report(timerres_stale_and_live(build), tmp_path)
    game, player = row(d, "game.exe"), row(d, "player.exe")
    assert (game["finest"], player["finest"]) == (False, True)      # the stale 0.5 ms is history
    assert (game["state"], game["requested"], game["smallest"], game["finest"], game["sets_clock"]) == (
        "stale", 0, 5000, False, False)
    assert (player["state"], player["requested"], player["finest"], player["sets_clock"]) == ("live", 10000, True, True)
    assert d["rows"][0]["process"] == "player.exe"                   # the live requester first
    assert d["current"] == 10000
    assert [(w["process"], w["pid"]) for w in d["verdict"]["set_by"]] == [("player.exe", 0x2000)]
    text = report(timerres_stale_and_live(build), tmp_path, "text")
    assert "CLOCK 1.000 ms: set by player.exe, PID 8192 (0x2000)." in text
    assert "game.exe, PID 4096 (0x1000): asked for 0.500 ms once and no longer asks" in text


@pytest.mark.parametrize("build", BUILDS)
def test_driver_request_reported_and_sets_the_clock(build, tmp_path):
    text = report(timerres_driver_finer(build), tmp_path, "text")
    assert "drivers (ExSetTimerResolution): ask for 0x1388 (0.500 ms), 1 request open, and set the clock" in text
    assert "CLOCK 0.500 ms: set by drivers (ExSetTimerResolution)." in text
    d = report(timerres_driver_finer(build), tmp_path)
    assert d["kernel"] == {"available": True, "requested": 5000, "requested_ms": 0.5, "count": 1, "live": True,
                           "sets_clock": True}
    assert d["current"] == 5000
    assert d["verdict"]["kind"] == "set" and [w["drivers"] for w in d["verdict"]["set_by"]] == [True]
    assert row(d, "player.exe")["sets_clock"] is False and row(d, "player.exe")["state"] == "live"


@pytest.mark.parametrize("build", BUILDS)
def test_clock_finer_than_every_live_request_is_said(build, tmp_path):
    """The drivers' request is there, but this target's symbols lack it: the clock (0.5 ms) is
    finer than every live request on the list (1 ms)."""
    b = timerres_driver_finer(build)
    del b.symbols["nt!ExpKernelRequestedTimerResolution"]
    b._sym_index.pop("nt!expkernelrequestedtimerresolution")
    text = report(b, tmp_path, "text")
    assert "drivers (ExSetTimerResolution): not available" in text
    assert "CLOCK 0.500 ms is finer than every live request (the finest asks for 1.000 ms): " \
           "a requester not on the list sets it" in text
    d = report(b, tmp_path)
    assert d["kernel"]["available"] is False and d["warnings"] == []
    assert d["verdict"]["kind"] == "finer" and d["verdict"]["set_by"] == [] and d["verdict"]["expected"] == 10000
    assert row(d, "player.exe")["sets_clock"] is False


@pytest.mark.parametrize("build", BUILDS)
def test_clock_coarser_than_a_live_request_is_said(build, tmp_path):
    b = ScenarioBuilder(build)
    b.process("System", 4)
    b.set_timer_resolution(b.process("x.exe", 0x40), 10000)
    b.time_increment(156250)                  # raw: a clock the live request did not get
    text = report(b, tmp_path, "text")
    assert "CLOCK 15.625 ms is coarser than the live request of x.exe, PID 64 (0x40): " \
           "that request is not honoured." in text
    d = report(b, tmp_path)
    assert d["verdict"]["kind"] == "coarser"
    assert [(w["process"], w["pid"]) for w in d["verdict"]["not_honoured"]] == [("x.exe", 0x40)]
    assert row(d, "x.exe")["sets_clock"] is False and row(d, "x.exe")["state"] == "live"


@pytest.mark.parametrize("build", IGNORE_BUILDS)
def test_ignored_request_is_said_and_not_blamed(build, tmp_path):
    d = report(timerres_coarser_ignored(build), tmp_path)
    r = row(d, "browser.exe")
    assert r["finest"] is False                                      # an ignored request is nobody's finest
    assert (r["state"], r["ignored"], r["set_timer_resolution"], r["requested"], r["sets_clock"], r["finest"]) == (
        "ignored", True, True, 10000, False, False)
    assert d["current"] == 156250                                    # the kernel recomputed without it
    assert d["verdict"]["kind"] == "ignored"
    assert [w["process"] for w in d["verdict"]["ignored"]] == ["browser.exe"]
    text = report(timerres_coarser_ignored(build), tmp_path, "text")
    assert "CLOCK 15.625 ms is coarser than the request of browser.exe, PID 12288 (0x3000): " \
           "the kernel ignores it (TimerResolutionIgnore)" in text


def test_ignore_needs_the_field():
    b = ScenarioBuilder(BUILDS[0])
    with pytest.raises(KeyError):
        b.ignore_timer_resolution(b.process("a.exe", 0x10))


# -- the shipped targets ------------------------------------------------------------------------------

def test_seed_svchost_is_stale_and_the_drivers_hold_the_clock():
    code, out, err = run_cli("timerres", "--target", mock("timerres_win81"), "--format", "json")
    d = json.loads(out)
    assert [(r["process"], r["finest"]) for r in d["rows"]] == [("svchost.exe", False)]
    assert [(r["process"], r["state"], r["sets_clock"]) for r in d["rows"]] == [("svchost.exe", "stale", False)]
    assert d["kernel"]["requested"] == 10000 and d["kernel"]["sets_clock"] is True
    assert [w["drivers"] for w in d["verdict"]["set_by"]] == [True]


def test_win10_names_both_half_millisecond_requesters_and_not_the_stale_one():
    code, out, err = run_cli("timerres", "--target", mock("timerres_win10"), "--format", "json")
    d = json.loads(out)
    assert [r["process"] for r in d["rows"]][-1] == "msedge.exe" and row(d, "msedge.exe")["finest"] is False
    assert [w["process"] for w in d["verdict"]["set_by"]] == ["RtkAudUService", "obs64.exe"]
    assert row(d, "msedge.exe")["state"] == "stale" and d["kernel"]["live"] is False
    assert d["process_request_count"] == 4


@pytest.mark.parametrize("build", [WIN10, WIN11])
def test_a_clock_the_hal_rounded_under_the_request_is_still_set_by_it(build, tmp_path):
    """ReactOS's HalSetTimeIncrement gives the largest interval the clock can at or below the
    one asked for: game.exe asks for 1 ms and the clock runs at 0.9766 ms.  game.exe sets it;
    it is not 'finer than every live request'."""
    b = ScenarioBuilder(build)
    b.hal_steps = [4883, 9766, 156250]
    game = b.process("game.exe", 0x1000)
    assert b.set_timer_resolution(game, 10000) == 9766
    d = report(b, tmp_path)
    assert d["verdict"]["kind"] == "set"
    assert [s.get("process") for s in d["verdict"]["set_by"]] == ["game.exe"]


def test_an_interrupted_timerres_reports_what_it_read_and_exits_3(monkeypatch):
    """Ctrl+C after the process list was read: the rows read are reported, the run says it was
    interrupted first, exits 3, and never says 'No process has asked' or 'no symbol' for what
    it did not get to."""
    import pykd_ext.commands.timerres as cmd

    def stop(*a, **k):
        raise KeyboardInterrupt()
    monkeypatch.setattr(cmd, "kernel_request", stop)
    code, out, err = run_cli("timerres", "--target", mock("timerres_win81"), "--no-color", "--no-progress")
    assert code == 3
    lines = out.splitlines()
    assert lines[1].startswith("INTERRUPTED (Ctrl+C): partial results")
    assert "svchost.exe" in out                         # read before the stop
    assert "not read before the interruption" in out and "no symbol" not in out
    code, out, err = run_cli("timerres", "--target", mock("power_9f4_zteusbnet"), "--no-color", "--no-progress")
    assert code == 3 and "No process has asked" not in out


def test_dpcs_stopped_before_any_processor_does_not_blame_a_missing_symbol(monkeypatch):
    import pykd_ext.analysis.dpc as dpc

    def stop(*a, **k):
        raise KeyboardInterrupt()
    monkeypatch.setattr(dpc, "read_cpus", stop)
    code, out, err = run_cli("dpcs", "--target", mock("dpc_133_athwbx"), "--format", "json", "--no-progress")
    d = json.loads(out)
    assert code == 3 and d["interrupted"] == "Ctrl+C"
    assert [w["kind"] for w in d["warnings"]] == ["interrupted"]
