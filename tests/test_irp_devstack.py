"""`irp` and `devstack`, field by field, on two builds (Windows 7 and 10), and on damage."""
import json

import pytest

from conftest import WIN7, WIN10, cached, mock, run_cli
from pykd_ext.kernel.io import decode_irp, device_stack
from pykd_ext.mock.builder import ScenarioBuilder
from pykd_ext.mock.scenarios import power_9f4_zteusbnet

ZTE_INSTANCE = "USB\\VID_19D2&PID_0063&MI_04\\6&200b5242&0&0004"


def seed_case(build):
    """The seed 003 layout on `build`; returns (builder, worker thread, IRP, FDO, PDO), the
    IRP found the way a debugger finds it: from the worker's IrpList."""
    b = power_9f4_zteusbnet(build)
    t = b.target()
    from pykd_ext.kernel.views import Struct
    worker = next(a for a, ti in b.threads.items() if ti.start == "nt!ExpWorkerThread"
                  and Struct(t, "_ETHREAD", a).sub("IrpList")["Flink"] != a + b.off("_ETHREAD", "IrpList"))
    flink = Struct(t, "_ETHREAD", worker).sub("IrpList")["Flink"]
    irp = flink - b.off("_IRP", "ThreadListEntry")
    loc = irp + b.size("_IRP") + 9 * b.size("_IO_STACK_LOCATION")
    fdo = Struct(t, "_IO_STACK_LOCATION", loc)["DeviceObject"]
    pdo = Struct(t, "_DEVICE_OBJECT", fdo)["AttachedDevice"] or \
        Struct(t, "_DEVOBJ_EXTENSION", Struct(t, "_DEVICE_OBJECT", fdo)["DeviceObjectExtension"])["AttachedTo"]
    return b, worker, irp, fdo, pdo


@pytest.mark.parametrize("build", [WIN7, WIN10])
def test_irp_fields(build):
    b, worker, irp_addr, fdo, _ = seed_case(build)
    irp = decode_irp(cached(b), irp_addr)
    assert irp.readable and not irp.diagnostics
    assert (irp.stack_count, irp.current_location, irp.current) == (10, 10, 9)
    # IopSynchronousCall's IRP: ZTEusbnet waits in its dispatch routine and never calls
    # IoMarkIrpPending (the seed's !irp shows control 0); PendingReturned is set only by
    # IofCompleteRequest
    assert irp.thread == worker and not irp.pending_returned and not irp.cancel
    cur = irp.current_loc
    assert (cur.major, cur.minor, cur.major_name, cur.minor_name) == \
        (0x1b, 0x17, "IRP_MJ_PNP", "IRP_MN_SURPRISE_REMOVAL")
    assert cur.device == fdo and not cur.pending and irp.state == "pending"
    assert cur.address == irp_addr + 0xd0 + 9 * 0x48          # x64: IRP 0xd0, location 0x48
    assert all(not l.major and not l.device for l in irp.locations[:9])


@pytest.mark.parametrize("build", [WIN7, WIN10])
def test_devstack_fields(build):
    b, _, _, fdo, pdo = seed_case(build)
    st = device_stack(cached(b), pdo)                      # asked from the bottom
    assert [d.address for d in st.devices] == [fdo, pdo] and st.index == 1
    assert [d.driver.name for d in st.devices] == ["\\Driver\\ZTEusbnet", "\\Driver\\usbccgp"]
    assert [d.driver.image for d in st.devices] == ["ZTEusbnet.sys", "usbccgp.sys"]
    assert [d.name for d in st.devices] == ["NDMP14", "000000a8"]
    assert st.devices[0].extension == fdo + b.size("_DEVICE_OBJECT")
    assert (st.devnode.instance_path, st.devnode.service, st.devnode.state) == \
        (ZTE_INSTANCE, "ZTEusbnet", "DeviceNodeStarted")
    assert st.devnode.pdo == pdo


def _save(b, tmp_path):
    p = str(tmp_path / "t.json.gz")
    b.save(p)
    return p


def test_power_irp_type_and_state_by_name(tmp_path):
    b = ScenarioBuilder(WIN10)
    b.module("Filt", "Filt.sys")
    dev, _ = b.device_object(b.driver_object("\\Driver\\Filt"))
    a = b.irp([{"MajorFunction": 0x16, "MinorFunction": 0x02, "DeviceObject": dev,
                "Parameters__Power__Type": "DevicePowerState", "Parameters__Power__State": "PowerDeviceD3",
                "CompletionRoutine": "nt!PopRequestCompletion"},
               {"MajorFunction": 0x16, "MinorFunction": 0x03, "DeviceObject": dev,
                "Parameters__Power__Type": "SystemPowerState",
                "Parameters__Power__State": "PowerSystemHibernate"}], current=0)
    irp = decode_irp(cached(b), a)
    assert irp.locations[0].power == ("DevicePowerState", "D3")
    assert irp.locations[1].power == ("SystemPowerState", "S4")
    assert irp.locations[0].minor_name == "IRP_MN_SET_POWER"
    assert irp.locations[1].minor_name == "IRP_MN_QUERY_POWER"
    code, out, err = run_cli("irp", hex(a), "--target", _save(b, tmp_path))
    assert "IRP_MJ_POWER / IRP_MN_SET_POWER  DevicePowerState D3" in out
    assert "nt!PopRequestCompletion" in out


def test_irp_text_and_json_on_the_seed_target():
    _, worker, irp, fdo, _ = seed_case(WIN7)
    code, out, err = run_cli("irp", "%x`%08x" % (irp >> 32, irp & 0xffffffff), "--target", mock("power_9f4_zteusbnet"))
    assert code == 0, err
    assert "IRP 0x%x  10 stack locations, current 10 (0x%x)" % (irp, irp + 0x358) in out
    assert "locations 1-9 unused" in out              # numbered as "current 10": from 1
    assert "pending at \\Driver\\ZTEusbnet (ZTEusbnet.sys), device 0x%x (NDMP14)" % fdo in out
    assert "Cid 0004.0048  System" in out
    d = json.loads(run_cli("irp", hex(irp), "--target", mock("power_9f4_zteusbnet"), "--format", "json")[1])
    assert d["pending_at"] == {"device": hex(fdo), "device_name": "NDMP14", "driver": "\\Driver\\ZTEusbnet",
                               "driver_object": d["locations"][9]["driver_object"], "module": "ZTEusbnet.sys"}
    assert d["pending_at"]["driver_object"].startswith("0x")
    assert d["thread"] == hex(worker) and d["current_location"] == 10
    assert d["location"] == {"number": 10, "of": 10, "address": hex(irp + 0x358)}
    assert [x["number"] for x in d["locations"] if x["current"]] == [10]
    assert (d["cid"], d["process"]) == ("0004.0048", "System")
    assert d["locations"][9]["minor"] == "IRP_MN_SURPRISE_REMOVAL" and d["locations"][9]["minor_code"] == 0x17


def test_devstack_text_on_the_seed_target():
    _, _, _, fdo, pdo = seed_case(WIN7)
    code, out, err = run_cli("devstack", hex(fdo), "--target", mock("power_9f4_zteusbnet"))
    assert code == 0, err
    lines = out.splitlines()
    d = json.loads(run_cli("devstack", hex(fdo), "--target", mock("power_9f4_zteusbnet"), "--format", "json")[1])
    drv = [x["driver_object"] for x in d["devices"]]
    # the driver object's address is printed (inside WinDbg it links to !drvobj)
    assert lines[3].split()[:6] == [">", hex(fdo), "\\Driver\\ZTEusbnet", drv[0], hex(fdo + 0x150), "NDMP14"]
    assert lines[4].split()[:5] == [hex(pdo), "\\Driver\\usbccgp", drv[1], hex(pdo + 0x150), "000000a8"]
    assert "instance path  " + ZTE_INSTANCE in out


# -- damage and bad input --------------------------------------------------------------------------

def test_irp_with_unreadable_stack_locations_shows_what_it_can(tmp_path):
    b = ScenarioBuilder(WIN10)
    b.module("Filt", "Filt.sys")
    dev, _ = b.device_object(b.driver_object("\\Driver\\Filt"))
    irp_size, sl = b.size("_IRP"), b.size("_IO_STACK_LOCATION")
    page = 0x1000
    b._pool = (b._pool + 2 * page) // page * page - irp_size - 6 * sl   # locations 6.. on the next page
    a = b.irp([{"MajorFunction": 0x03, "DeviceObject": dev}] * 8, current=6)
    assert (a + irp_size + 6 * sl) % page == 0
    b.mem.unmap(a + irp_size + 6 * sl)
    irp = decode_irp(cached(b), a)
    assert [l.readable for l in irp.locations] == [True] * 6 + [False] * 2
    assert [l.major_name for l in irp.locations[:6]] == ["IRP_MJ_READ"] * 6
    assert irp.current == 6 and not irp.current_loc.readable
    assert any("stack location 6 is unreadable" in d.message for d in irp.diagnostics)
    code, out, err = run_cli("irp", hex(a), "--target", _save(b, tmp_path))
    # the unreadable locations make the results partial: said first, and exit 3
    assert code == 3 and "unreadable" in out and "WARNINGS" in out
    assert out.splitlines()[1].startswith("PARTIAL RESULTS: ")


def test_device_stack_that_loops_is_cut_with_a_warning():
    b, _, _, fdo, pdo = seed_case(WIN10)
    b.put("_DEVICE_OBJECT", fdo, AttachedDevice=pdo)           # top points back at the bottom
    st = device_stack(cached(b), pdo)
    assert not st.complete
    assert [d.kind for d in st.diagnostics] == ["loop"]
    assert st.devices[-1].address == pdo


@pytest.mark.parametrize("argv", [["irp", "0x1000"], ["devstack", "0x1000"], ["irp", "nothex"],
                                  ["devstack"]])
def test_bad_addresses_are_one_line_exit_2(argv):
    code, out, err = run_cli(*argv, "--target", mock("power_9f4_zteusbnet"))
    assert code == 2 and out == "" and len(err.splitlines()) == 1


def test_an_address_that_is_not_an_irp_says_so():
    _, _, _, fdo, _ = seed_case(WIN7)
    code, out, err = run_cli("irp", hex(fdo), "--target", mock("power_9f4_zteusbnet"))
    assert code == 2
    assert err.strip() == "pykd-ext: irp: 0x%x is not an IRP (Type 3, an IRP's is 6)" % fdo


def test_a_device_at_the_address_a_published_session_gives():
    """Seed 003's `!devstack fffffa800c089050` shows NDMP14 (\\Driver\\ZTEusbnet) with its
    extension at fffffa800c0891a0: the builder lays the device there, its name header below
    it, the extension right behind the 0x150-byte DEVICE_OBJECT, and devstack reads it back."""
    b = ScenarioBuilder(WIN7)
    b.module("ZTEusbnet", "ZTEusbnet.sys")
    drv = b.driver_object("\\Driver\\ZTEusbnet")
    dev, ext = b.device_object(drv, 0x100, name="NDMP14", address=0xfffffa800c089050)
    assert (dev, ext) == (0xfffffa800c089050, 0xfffffa800c0891a0)
    stack = device_stack(cached(b), dev)
    assert [(d.address, d.name, d.extension) for d in stack.devices] == [(dev, "NDMP14", ext)]


def test_table_cells_are_never_read_as_numbers(tmp_path):
    """tabulate parses cells that look like numbers unless told not to (0.10: a device named
    000000e5 printed as 0): names and Cids are shown exactly as read."""
    from pykd_ext.render.io import render_devstack_text
    from pykd_ext.render.style import Style
    import io as _io
    b = ScenarioBuilder(WIN10)
    b.module("pci", "pci.sys")
    drv = b.driver_object("\\Driver\\pci")
    dev, _ = b.device_object(drv, 0x40, name="000000e5")
    st = device_stack(cached(b), dev)
    out = _io.StringIO()
    render_devstack_text(st, out, Style("plain"), "devstack")
    row = [l for l in out.getvalue().splitlines() if "0x%x" % dev in l][0]
    assert "000000e5" in row.split()


def test_addresses_as_windbg_users_type_them():
    """irp and devstack take WinDbg expressions: `fffffa80`...`, module!symbol, poi(), + and -."""
    from pykd_ext.target.mock import MockTarget
    from pykd_ext.target.layouts import load_shipped
    t = MockTarget.load(mock("power_9f4_zteusbnet"))
    pdo_off = load_shipped(WIN7).layout("_DEVICE_NODE").offset("PhysicalDeviceObject")
    root = int.from_bytes(t.read(t.symbol("nt!IopRootDeviceNode"), 8), "little")
    pdo = int.from_bytes(t.read(root + pdo_off, 8), "little")
    code, out, err = run_cli("devstack", "poi(poi(nt!IopRootDeviceNode)+0x%x)" % pdo_off,
                             "--target", mock("power_9f4_zteusbnet"), "--format", "json")
    assert code == 0 and json.loads(out)["devices"][0]["device"] == "0x%x" % pdo
    code, out, err = run_cli("devstack", "poi(IopRootDeviceNode)+0x%x-0x%x" % (pdo_off, pdo_off),
                             "--target", mock("power_9f4_zteusbnet"))
    assert code == 2 and "is not a device object" in err          # a DEVICE_NODE, said in one line
    code, out, err = run_cli("irp", "nt!NoSuchThing", "--target", mock("power_9f4_zteusbnet"))
    assert code == 2 and err.strip() == "pykd-ext: irp: no symbol nt!NoSuchThing in this target"
    code, out, err = run_cli("irp", "poi(", "--target", mock("power_9f4_zteusbnet"))
    assert code == 2 and "the expression ends too soon" in err


def test_a_devnode_state_that_is_no_state_is_said_so():
    """_PNP_DEVNODE_STATE starts at 0x300: a 0 there is not 'State0' but no state at all."""
    b = ScenarioBuilder(WIN10)
    b.module("pci", "pci.sys")
    drv = b.driver_object("\\Driver\\pci")
    dev, _ = b.device_object(drv, 0x40)
    n = b.devnode(dev, "PCI\\VEN_1234&DEV_0001\\0", "pci")
    b.put("_DEVICE_NODE", n, State=0)
    st = device_stack(cached(b), dev)
    assert st.devnode.state == "not a devnode state (0x0)"


def test_a_number_wider_than_an_address_is_refused_as_typed():
    code, out, err = run_cli("irp", "0xffffffffffffffffff", "--target", mock("power_9f4_zteusbnet"))
    assert code == 2 and "wider than a 64-bit address" in err and out == ""
