"""Issue 17, point 1: every command's JSON follows one vocabulary (README: "JSON output"), pinned by a
JSON Schema per command in pykd_ext/schemas (draft 2020-12, no unknown keys); `complete` means
the same everywhere and a partial result exits 3.

Every command's JSON is validated on every shipped target (irp and devstack on every IRP and
device powerirps names there, and on a few fixed ones), on the corrupted targets and on
interrupted runs; and facts the schemas cannot say are checked across commands: a thread's
Cid is "cid" wherever it appears and the same value, IRP stack locations are numbered from 1
and powerirps and irp agree, lock kinds are lower case."""
import json
import os

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

import pykd_ext
from pykd_ext.cli import build_parser
from pykd_ext.target.cache import CachedTarget

from conftest import MOCKS, mock, run_cli

SCHEMAS_DIR = os.path.join(os.path.dirname(pykd_ext.__file__), "schemas")
SHIPPED = sorted(f[:-len(".json.gz")] for f in os.listdir(MOCKS) if f.endswith(".json.gz"))
CORRUPT = [n for n in SHIPPED if n.startswith("corrupt_")]
WHOLE_MACHINE = ("deadlock", "powerirps", "dpcs", "timerres", "stacks", "running", "triage")
# the seed 003 IRP and the device it is pending at, on power_9f4_zteusbnet; an IRP and device
# on power_9f3_filter (the D3 IRP at AcmeFlt's filter device)
FIXED = [("power_9f4_zteusbnet", "irp", "0xfffffa8000c0a4a0"), ("power_9f4_zteusbnet", "devstack", "0xfffffa8000c09390"),
         ("power_9f3_filter", "irp", "0xfffffa8000c127b0"), ("power_9f3_filter", "devstack", "0xfffffa8000c112c0")]


def _load():
    out = {}
    for f in sorted(os.listdir(SCHEMAS_DIR)):
        if f.endswith(".schema.json"):
            with open(os.path.join(SCHEMAS_DIR, f)) as fh:
                out[f[:-len(".schema.json")]] = json.load(fh)
    return out


SCHEMAS = _load()
REGISTRY = Registry().with_resources([(s["$id"], Resource.from_contents(s)) for s in SCHEMAS.values()])


def validate(doc):
    """The schema errors of a command's document (its "command" names the schema)."""
    v = Draft202012Validator(SCHEMAS[doc["command"]], registry=REGISTRY)
    return ["%s: %s" % ("/".join(map(str, e.absolute_path)), e.message[:300]) for e in v.iter_errors(doc)]


def run_json(*argv):
    code, out, err = run_cli(*(argv + ("--format", "json", "--no-progress")))
    assert err == "" and code in (0, 3), (argv, code, err)
    doc = json.loads(out)
    assert code == (0 if doc["complete"] else 3), (argv, code)
    return doc


def json_commands():
    """Every command that has --format json, from the CLI's own parser."""
    p = build_parser()
    sub = next(a for a in p._actions if a.dest == "command")
    out = []
    for name, sp in sub.choices.items():
        fmt = [a for a in sp._actions if a.dest == "format"]
        if fmt and "json" in (fmt[0].choices or ()):
            out.append(name)
    return sorted(out)


# -- the schemas themselves ---------------------------------------------------------------------

def test_every_json_command_has_a_valid_schema():
    assert sorted(set(SCHEMAS) - {"common"}) == json_commands()
    for name, s in SCHEMAS.items():
        Draft202012Validator.check_schema(s)
        assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert s["$id"].endswith("/%s.schema.json" % name)


def test_the_schemas_pin_the_vocabulary():
    """A schema refuses an unknown key and an old name: additionalProperties is false on every
    object that lists its properties."""
    def objects(x):
        if isinstance(x, dict):
            if "properties" in x:
                yield x
            for v in x.values():
                for o in objects(v):
                    yield o
        elif isinstance(x, list):
            for v in x:
                for o in objects(v):
                    yield o
    for name, s in SCHEMAS.items():
        for o in objects(s):
            assert o.get("additionalProperties") is False, (name, sorted(o["properties"]))
    doc = run_json("deadlock", "--target", mock("eresource_deadlock"))
    assert validate(doc) == []
    t = next(iter(doc["threads"].values()))
    t["address"] = t.pop("thread")                            # the old name of a thread
    assert any("'address' was unexpected" in e for e in validate(doc))


# -- every command on every shipped target ------------------------------------------------------

@pytest.mark.parametrize("name", SHIPPED)
def test_every_command_validates_on_every_shipped_target(name):
    power = None
    for cmd in WHOLE_MACHINE:
        doc = run_json(cmd, "--target", mock(name))
        assert validate(doc) == [], (cmd, validate(doc)[:5])
        assert (doc["command"], doc["target"]) == (cmd, mock(name))
        if cmd == "powerirps":
            power = doc
    irps = sorted({p["irp"] for p in power["pending_irps"]})
    devices = sorted({x["device"] for p in power["pending_irps"] for x in p["device_stack"]})
    for cmd, addrs in (("irp", irps), ("devstack", devices)):
        for a in addrs:
            doc = run_json(cmd, a, "--target", mock(name))
            assert validate(doc) == [], (cmd, a, validate(doc)[:5])
    if name.startswith("power_") and name != "power_clean":
        assert irps and devices                              # the loop above was not empty


@pytest.mark.parametrize("name, cmd, address", FIXED)
def test_irp_and_devstack_validate_on_fixed_objects(name, cmd, address):
    doc = run_json(cmd, address, "--target", mock(name))
    assert validate(doc) == []
    assert doc["complete"] is True and doc["warnings"] == [] and doc["interrupted"] is None


# -- partial runs: corrupted targets, Ctrl+C, the read budget ------------------------------------

@pytest.mark.parametrize("name", CORRUPT)
def test_a_corrupted_target_is_partial_in_json_text_and_exit_status(name):
    partial = []
    for cmd in WHOLE_MACHINE:
        doc = run_json(cmd, "--target", mock(name))
        assert validate(doc) == []
        # complete is false iff a warning or an interruption says so (README: "JSON output")
        assert doc["complete"] is (not doc["warnings"] and doc["interrupted"] is None)
        code, text, _ = run_cli(cmd, "--target", mock(name), "--no-color", "--no-progress")
        assert code == (0 if doc["complete"] else 3)
        if not doc["complete"]:
            partial.append(cmd)
            assert text.splitlines()[1].startswith(("PARTIAL RESULTS: ", "INTERRUPTED ("))
    assert "triage" in partial                                # every corrupted target reads partial


def test_a_thread_list_that_loops_exits_3():
    for cmd in ("deadlock", "stacks", "powerirps", "triage"):
        code, text, err = run_cli(cmd, "--target", mock("corrupt_thread_list_loop"), "--no-color")
        assert code == 3 and err == "", cmd
        first = text.splitlines()[1]
        assert first == "PARTIAL RESULTS: 1 warning (listed at the end) says a reading was cut short", cmd
        doc = run_json(cmd, "--target", mock("corrupt_thread_list_loop"))
        assert doc["complete"] is False and doc["interrupted"] is None
        assert "loop" in [w["kind"] for w in doc["warnings"]]


def _interrupt_the_first_unwind(monkeypatch):
    """Ctrl+C (a KeyboardInterrupt, as Python raises it) at the first stack unwind."""
    real = CachedTarget.stack
    calls = {"n": 0}

    def stack(self, thread):
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt()
        return real(self, thread)
    monkeypatch.setattr(CachedTarget, "stack", stack)
    return calls


@pytest.mark.parametrize("cmd, name", [("deadlock", "eresource_deadlock"), ("powerirps", "power_9f4_zteusbnet"),
                                       ("powerirps", "power_clean"),
                                       ("stacks", "hang_no_cycle"), ("dpcs", "dpc_133_athwbx"),
                                       ("running", "dpc_133_athwbx"), ("triage", "eresource_deadlock")])
def test_an_interrupted_run_exits_3_and_says_so_first(monkeypatch, cmd, name):
    calls = _interrupt_the_first_unwind(monkeypatch)
    code, out, err = run_cli(cmd, "--target", mock(name), "--format", "json", "--no-progress")
    assert calls["n"] >= 1                                    # the interruption did happen
    doc = json.loads(out)
    assert code == 3 and validate(doc) == []
    assert (doc["complete"], doc["interrupted"]) == (False, "Ctrl+C")
    calls["n"] = 0
    code, text, err = run_cli(cmd, "--target", mock(name), "--no-color", "--no-progress")
    assert code == 3
    # the first line under the title: what follows is partial -- never a confident negative
    assert text.splitlines()[1].startswith("INTERRUPTED (Ctrl+C): partial results")
    if cmd != "triage":               # (triage's later sections may run whole after the Ctrl+C)
        assert "No deadlock cycle" not in text and "No pending power" not in text and \
            "No stuck power IRP:" not in text


def test_the_read_budget_makes_every_document_partial(monkeypatch):
    real = CachedTarget.__init__

    def small(self, backend, *a, **k):
        real(self, backend, *a, **k)
        self.read_budget = 2                                  # each command reads more than this
    monkeypatch.setattr(CachedTarget, "__init__", small)
    for cmd in WHOLE_MACHINE:
        code, out, err = run_cli(cmd, "--target", mock("eresource_deadlock"), "--format", "json", "--no-progress")
        assert code == 3 and "the read budget" in err, cmd
        doc = json.loads(out)
        assert validate(doc) == []
        assert (doc["complete"], doc["interrupted"]) == (False, "read budget"), cmd


# -- one name and one value per concept across commands ------------------------------------------

# the names the commands used before the vocabulary (issue 17)
OLD_NAMES = {"current_thread", "thread_cid", "thread_process", "irp_thread", "root_driver", "drivers",
             "waits_for", "index"}


def _old_shapes(doc):
    """Where a document names a thread "address", or a lock's kind and name without "lock_"."""
    for v in _dicts(doc):
        if "cid" in v and "address" in v:
            yield "a thread named address: %s" % v["address"]
        if "lock" in v and ("kind" in v or "name" in v):
            yield "a lock's kind or name without lock_: %s" % v["lock"]
        if "instance_path" in v and "devnode" not in v:
            yield "a device node named address"
        if "device" in v and "name" in v:
            yield "a device's name that is not device_name: %s" % v["device"]
        for k in ("routine", "current_dpc_routine"):
            if isinstance(v.get(k), str) and not v[k].startswith("0x"):
                yield "a routine named by its symbol, not its address: %s" % v[k]


def _keys(x, path=""):
    if isinstance(x, dict):
        for k, v in x.items():
            yield path, k, v
            for item in _keys(v, path + "." + (k if not k.startswith("0x") else "*")):
                yield item
    elif isinstance(x, list):
        for v in x:
            for item in _keys(v, path + "[]"):
                yield item


def _dicts(x):
    if isinstance(x, dict):
        yield x
        x = list(x.values())
    if isinstance(x, list):
        for v in x:
            for d in _dicts(v):
                yield d


def _cids(doc):
    """{thread address: {Cid}} wherever an object names a thread and its Cid."""
    out = {}
    for v in _dicts(doc):
        if v.get("cid") and v.get("thread"):
            out.setdefault(v["thread"], set()).add(v["cid"])
    return out


def test_a_thread_is_thread_cid_process_in_every_command():
    docs = {}
    for name in ("power_9f4_zteusbnet", "dpc_133_athwbx", "spinlock_queued_abba", "eresource_deadlock"):
        for cmd in WHOLE_MACHINE:
            docs[(name, cmd)] = run_json(cmd, "--target", mock(name))
    irp = run_json("irp", "0xfffffa8000c0a4a0", "--target", mock("power_9f4_zteusbnet"))
    docs[("power_9f4_zteusbnet", "irp")] = irp
    # no command uses an old name for a thread, a Cid, a process or a lock's kind and name
    for key, doc in docs.items():
        old = sorted({"%s.%s" % (p, k) for p, k, _ in _keys(doc) if k in OLD_NAMES and not p.endswith("scanned")})
        assert old + sorted(set(_old_shapes(doc))) == [], key
    # the Cid is "cid" beside "thread" in dpcs, running, irp, powerirps, deadlock and stacks
    for cmd in ("dpcs", "running", "irp", "powerirps", "deadlock", "stacks"):
        assert any(_cids(d) for (n, c), d in docs.items() if c == cmd), cmd
    # and one thread has one Cid whichever command names it
    for name in ("power_9f4_zteusbnet", "dpc_133_athwbx", "spinlock_queued_abba", "eresource_deadlock"):
        seen = {}
        for (n, cmd), doc in docs.items():
            if n == name:
                for t, cids in _cids(doc).items():
                    seen.setdefault(t, set()).update(cids)
        assert seen and all(len(c) == 1 for c in seen.values()), (name, seen)
    # the DPC routine a culprit ran is "function" in dpcs; triage's verdict names a function of
    # the blamed module only (athwbx has no symbols: none), never ndis's beside athwbx
    assert docs[("dpc_133_athwbx", "dpcs")]["culprit"]["function"] == "ndis!ndisInterruptDpc"
    assert docs[("dpc_133_athwbx", "triage")]["verdict"]["module"] == "athwbx.sys"
    assert docs[("dpc_133_athwbx", "triage")]["verdict"]["function"] is None
    holder = docs[("power_9f4_zteusbnet", "powerirps")]["pnp_lock_holder"]
    assert (irp["thread"], irp["cid"], irp["process"]) == (holder["thread"], holder["cid"], holder["process"]) == (
        "0xfffffa8000c09fd0", "0004.0048", "System")
    cpu = docs[("dpc_133_athwbx", "dpcs")]["cpus"][1]
    run_cpu = docs[("dpc_133_athwbx", "running")]["cpus"][1]
    assert (cpu["thread"], cpu["cid"], cpu["process"]) == (run_cpu["thread"], run_cpu["cid"], run_cpu["process"])


def test_one_bug_check_object_in_every_command():
    shapes = set()
    for cmd in ("powerirps", "dpcs", "running", "triage"):
        for name in ("power_9f4_zteusbnet", "dpc_133_athwbx"):
            bc = run_json(cmd, "--target", mock(name))["bugcheck"]
            shapes.add(tuple(list(bc)[:4]))
            assert bc["subcode"] == bc["args"][0]             # 0x9F and 0x133: parameter 1
    assert shapes == {("code", "name", "args", "subcode")}
    assert run_json("dpcs", "--target", mock("dpc_133_athwbx"))["bugcheck"]["name"] == "DPC_WATCHDOG_VIOLATION"
    assert run_json("running", "--target", mock("power_9f4_zteusbnet"))["bugcheck"]["name"] == \
        "DRIVER_POWER_STATE_FAILURE"


POWER = [n for n in SHIPPED if n.startswith("power_") or n == "corrupt_power_lists"]


@pytest.mark.parametrize("name", POWER)
def test_stack_locations_are_numbered_from_1_and_powerirps_and_irp_agree(name):
    power = run_json("powerirps", "--target", mock(name))
    located = [p for p in power["pending_irps"] if p["location"] is not None]
    assert located
    for p in located:
        irp = run_json("irp", p["irp"], "--target", mock(name))
        loc = p["location"]
        assert loc == irp["location"]
        # WinDbg's "current N of M": N is the IRP's CurrentLocation, counted from 1
        assert 1 <= loc["number"] <= loc["of"] == irp["stack_count"]
        assert loc["number"] == irp["current_location"]
        assert [x["number"] for x in irp["locations"]] == list(range(1, irp["stack_count"] + 1))
        [cur] = [x for x in irp["locations"] if x["current"]]
        assert (cur["number"], cur["address"]) == (loc["number"], loc["address"])
        if not p["expected"]:                                 # the text details the unexpected ones
            text = run_cli("powerirps", "--target", mock(name), "--no-color")[1]
            assert "stack location current %d of %d" % (loc["number"], loc["of"]) in text


def test_lock_kinds_are_lower_case_and_names_null_when_absent():
    kinds = set()
    for name in SHIPPED:
        for cmd in ("deadlock", "powerirps"):
            for p, k, v in _keys(run_json(cmd, "--target", mock(name))):
                if k == "lock_kind" and v is not None:
                    assert v == v.lower(), (name, cmd, p, v)
                    kinds.add(v)
                if k in ("lock_name", "device_name", "process", "module", "driver"):
                    assert v != "", (name, cmd, p, k)
    assert {"eresource", "mutant", "push lock", "spin lock", "queued spin lock", "fast mutex"} <= kinds
    d = run_json("deadlock", "--target", mock("eresource_deadlock"))
    assert {l["lock_kind"] for l in d["locks"].values()} == {"eresource"}
    holds = [h for t in d["threads"].values() for h in t["holds"]]
    assert holds and all(list(h) == ["lock", "lock_kind", "lock_name", "mode"] for h in holds)
    h = run_json("powerirps", "--target", mock("power_9f4_zteusbnet"))["pnp_lock_holder"]["holds"]
    assert [(x["lock_kind"], x["lock_name"]) for x in h] == [("eresource", "nt!PiEngineLock"),
                                                             ("eresource", "nt!IopDeviceTreeLock")]
    # the text keeps the kernel's name for the type
    text = run_cli("powerirps", "--target", mock("power_9f4_zteusbnet"), "--no-color")[1]
    assert "holds  ERESOURCE 0x" in text


def test_a_blamed_driver_is_a_module_everywhere():
    d = run_json("deadlock", "--target", mock("eresource_deadlock"))
    assert d["cycles"][0]["modules"] == ["TestDriver.sys"]
    assert {t["module"] for t in d["threads"].values()} == {"TestDriver.sys"}
    t = run_json("triage", "--target", mock("eresource_deadlock"))
    assert t["verdict"]["module"] == "TestDriver.sys"
    # a spin lock's module is its image file name too, as its spinners' threads name it
    d = run_json("deadlock", "--target", mock("spinlock_queued_abba"))
    spun = {s["module"] for s in d["spin_locks"]} | {x["module"] for s in d["spin_locks"] for x in s["spinners"]}
    assert spun == {"NetFlt.sys"} and d["cycles"][0]["modules"] == ["NetFlt.sys"]
    assert run_json("stacks", "--target", mock("hang_no_cycle"), "--module", "SlowFlt")["groups"][0]["module"] == \
        "SlowFlt.sys"
    # a device: device_name, driver (the driver object's name), driver_object, module
    dev = run_json("devstack", "0xfffffa8000c09390", "--target", mock("power_9f4_zteusbnet"))
    top = dev["devices"][0]
    assert (top["device_name"], top["driver"], top["module"]) == ("NDMP14", "\\Driver\\ZTEusbnet", "ZTEusbnet.sys")
    assert dev["devnode"]["devnode"].startswith("0x")
    p = run_json("powerirps", "--target", mock("power_9f4_zteusbnet"))["pending_irps"][0]
    want = {k: top[k] for k in ("device", "device_name", "driver", "driver_object", "module")}
    want["pending_here"] = True
    assert p["device_stack"][0] == want
    assert p["devnode"]["devnode"] == dev["devnode"]["devnode"]


def test_the_schemas_refuse_empty_names_and_misplaced_modules_and_drivers():
    """A name is never "" (absent is null), a module is an image file name and a driver is a
    driver object's name: the schemas say so, so a renderer that breaks it fails here."""
    doc = run_json("powerirps", "--target", mock("power_9f4_zteusbnet"))
    assert validate(doc) == []
    holder = doc["pnp_lock_holder"]
    for key, bad in (("process", ""), ("module", "ZTEusbnet"), ("cid", "")):
        broken = json.loads(json.dumps(doc))
        broken["pnp_lock_holder"][key] = bad
        assert validate(broken) != [], (key, bad)
    broken = json.loads(json.dumps(doc))
    broken["pending_irps"][0]["pending_at"]["driver"] = "ZTEusbnet.sys"        # a module under "driver"
    assert validate(broken) != []
    assert holder["module"] == "ZTEusbnet.sys"


def test_every_thread_address_comes_with_its_cid_and_process():
    """A thread named by address only (an IRP's thread, the 0x9F culprit's, the fault's thread)
    has its Cid and process beside it, read from the thread, like every other thread."""
    doc = run_json("powerirps", "--target", mock("power_9f4_other_irp"))
    c = doc["culprit"]
    holder = doc["pnp_lock_holder"]
    assert (c["thread"], c["cid"], c["process"]) == (holder["thread"], holder["cid"], holder["process"])
    assert [(p["cid"], p["process"]) for p in doc["pending_irps"] if p["thread"]] == [(holder["cid"], "System")]
    assert [x["process"] for x in c["chain"] if x["link"] == "thread"] == ["System"]
    fault = run_json("triage", "--target", mock("bugcheck_d1_lock_holder"))["fault"]
    assert fault["thread"] and fault["cid"] and fault["process"] == "Idle"
