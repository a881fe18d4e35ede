"""Device and driver objects, as far as the deadlock report needs them: which device's
extension a lock lives in.

IoCreateDevice allocates the DEVICE_OBJECT and its extension in one block: DeviceExtension
points just past the DEVICE_OBJECT and DEVICE_OBJECT.Size counts both.  So the device that
contains an address in its extension is found by probing back, at pool alignment, for a
DEVICE_OBJECT (Type IO_TYPE_DEVICE) whose extension range holds the address.
"""
from ..errors import MemoryFault
from .views import Struct

IO_TYPE_DEVICE = 3
IO_TYPE_DRIVER = 4
PROBE_BACK = 0x1000


def read_unicode_string(target, address, maxchars=512):
    us = Struct(target, "_UNICODE_STRING", address)
    n = min(us["Length"], 2 * maxchars)
    if n == 0 or us["Buffer"] == 0:
        return ""
    return target.read(us["Buffer"], n).decode("utf-16-le", "replace")


def driver_name(target, driver_object):
    """`\\Driver\\Name` of a DRIVER_OBJECT ('' when unreadable or not a driver object)."""
    try:
        d = Struct(target, "_DRIVER_OBJECT", driver_object)
        if d["Type"] != IO_TYPE_DRIVER:
            return ""
        return read_unicode_string(target, d.address_of("DriverName"))
    except MemoryFault:
        return ""


def device_containing(target, address):
    """(device object, offset in its extension, driver name) when `address` lies in a
    device extension, else None."""
    lay = target.layouts().layout("_DEVICE_OBJECT")
    start = address - (address % 16)
    for cand in range(start - lay.size, start - lay.size - PROBE_BACK, -16):
        try:
            d = Struct(target, lay, cand)
            if d["Type"] != IO_TYPE_DEVICE:
                continue
            ext = d["DeviceExtension"]
            if ext != cand + lay.size or not (ext <= address < cand + d["Size"]):
                continue
            return cand, address - ext, driver_name(target, d["DriverObject"])
        except MemoryFault:
            return None
    return None
