"""Device and driver objects, as far as the deadlock report needs them: which device's
extension a lock lives in.

IoCreateDevice allocates the DEVICE_OBJECT and its extension in one block: DeviceExtension
points just past the DEVICE_OBJECT and DEVICE_OBJECT.Size counts both.  So the device that
contains an address in its extension is found by probing back, at pool alignment, for a
DEVICE_OBJECT (Type IO_TYPE_DEVICE) whose extension range holds the address.
"""
from ..errors import MemoryFault
from ..render.out import printable
from .views import Struct

IO_TYPE_DEVICE = 3
IO_TYPE_DRIVER = 4
PROBE_BACK = 0x1000
_DEVICE_TYPE = IO_TYPE_DEVICE.to_bytes(2, "little")


def read_unicode_string(target, address, maxchars=512):
    """The UNICODE_STRING at `address`, at most `maxchars` characters, made printable once here
    (render/out.py printable): a lone surrogate or a control character in a name from memory
    is shown escaped, so no renderer or console can choke on it."""
    us = Struct(target, "_UNICODE_STRING", address)
    n = min(us["Length"], 2 * maxchars) & ~1          # whole UTF-16 code units only
    if n == 0 or us["Buffer"] == 0:
        return ""
    return printable(target.read(us["Buffer"], n).decode("utf-16-le", "surrogatepass"))


def read_driver(target, driver_object):
    """(Type, `\\Driver\\Name`, DriverStart) of a DRIVER_OBJECT; name and start are ''/0
    when Type is not IO_TYPE_DRIVER.  MemoryFault when it is unreadable."""
    d = Struct(target, "_DRIVER_OBJECT", driver_object)
    if d["Type"] != IO_TYPE_DRIVER:
        return d["Type"], "", 0
    return IO_TYPE_DRIVER, read_unicode_string(target, d.address_of("DriverName")), d["DriverStart"]


def driver_name(target, driver_object):
    """`\\Driver\\Name` of a DRIVER_OBJECT ('' when unreadable or not a driver object)."""
    try:
        return read_driver(target, driver_object)[1]
    except MemoryFault:
        return ""


def device_containing(target, address):
    """(device object, offset in its extension, driver name) when `address` lies in a
    device extension, else None.  Reads the probe window once and decodes only candidates
    whose Type is IO_TYPE_DEVICE."""
    lay = target.layouts().layout("_DEVICE_OBJECT")
    type_off = lay.offset("Type")
    end = address - (address % 16) - lay.size          # the nearest candidate
    lo = max(end - PROBE_BACK, 0)
    page = target.page_size if hasattr(target, "page_size") else 0x1000
    for start in (lo, max(lo, end - (end % page))):     # whole window, else from its last page
        try:
            raw = target.read(start, end - start + lay.size)
            break
        except MemoryFault:
            continue
    else:
        return None
    # candidates from the nearest down, found with rfind (C speed) rather than decoding all
    # 256 of them: the scan runs once per lock a thread holds, tens of thousands on a target
    # whose lock list is corrupt
    top = end - start + type_off                          # where the nearest candidate's Type lies
    p = raw.rfind(_DEVICE_TYPE, type_off, top + 2)
    while p >= type_off:
        if (top - p) % 16 == 0:
            off = p - type_off
            cand = start + off
            d = Struct(target, lay, cand, raw=raw[off:off + lay.size])
            ext = d["DeviceExtension"]
            if ext == cand + lay.size and ext <= address < cand + d["Size"]:
                return cand, address - ext, driver_name(target, d["DriverObject"])
        p = raw.rfind(_DEVICE_TYPE, type_off, p + 1)
    return None
