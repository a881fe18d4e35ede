"""Blame looks past frameworks (issue 16): a framework frame innermost on a stack (KMDF, NDIS,
Storport, the Filter Manager, PortCls, KS ...) is working for its client; the client driver on
the stack is the one to look at."""
from pykd_ext.analysis.waitgraph import analyze
from pykd_ext.mock.builder import ScenarioBuilder

from conftest import WIN10, cached

TOP = ["nt!KiSwapContext+0x76", "nt!KiSwapThread+0x3a7", "nt!KiCommitThreadWait+0x14f",
       "nt!KeWaitForSingleObject+0x233"]


def _driver(frames):
    b = ScenarioBuilder(WIN10)
    for m in ("Wdf01000", "AcmeUsb", "ndis", "FLTMGR", "SpbCx", "AcmeI2c"):
        b.module(m, m + ".sys")
    sysp = b.process("System", 4)
    r = b.eresource()
    owner = b.thread(sysp, 0x10, "AcmeUsb!Worker", frames=TOP + frames)
    b.acquire_resource(r, owner)
    b.wait_on(owner, [b.event()], "Executive")
    w = b.thread(sysp, 0x14, "nt!W", frames=TOP + ["nt!ExpWaitForResource+0x6d",
                                                    "nt!ExAcquireResourceExclusiveLite+0x1a6", "nt!W+0x10"])
    b.wait_resource(w, r)
    a = analyze(cached(b))
    return a.threads[owner].driver


def test_the_client_of_a_framework_is_blamed_not_the_framework():
    # KMDF waits inside its own code on behalf of the client's EvtIoRead callback
    assert _driver(["Wdf01000!FxWaitForSignal+0x30", "AcmeUsb!EvtIoRead+0x52",
                    "Wdf01000!FxIoQueue::DispatchEvents+0x1b2", "nt!IofCallDriver+0x55"]) == "AcmeUsb.sys"
    # the client calls down into NDIS, which waits
    assert _driver(["ndis!NdisMSleep+0x11", "AcmeUsb!ResetAdapter+0x21", "ndis!ndisMInvokeReset+0x40"]) == \
        "AcmeUsb.sys"


def test_a_stack_with_only_framework_code_blames_the_framework():
    assert _driver(["FLTMGR!FltpWaitForCallbacks+0x18", "FLTMGR!FltpDispatch+0x90"]) == "FLTMGR.sys"


def test_the_frameworks_are_a_data_file_each_with_what_it_is_and_where_it_is_documented():
    """issue 16: 'a data file of framework and port/class modules ... and how to find the client
    driver under them' -- pykd_ext/data/frameworks.json, shipped with the package."""
    import json
    import os
    import pykd_ext
    from pykd_ext.kernel.stacks import framework_modules
    FRAMEWORK_MODULES = framework_modules()
    doc = json.load(open(os.path.join(os.path.dirname(pykd_ext.__file__), "data", "frameworks.json")))
    assert doc["client"] and len(doc["modules"]) == len(FRAMEWORK_MODULES) >= 12
    for m in doc["modules"]:
        assert m["module"] and m["what"] and m["read"].startswith("MS docs:"), m
    assert {"wdf01000", "ndis", "storport", "fltmgr", "portcls", "ks"} <= FRAMEWORK_MODULES
    # a class extension from the file, not from a list in the code: the I2C controller's driver
    assert _driver(["SpbCx!SpbRequestWait+0x22", "AcmeI2c!OnRead+0x31", "SpbCx!SpbDispatch+0x80"]) == "AcmeI2c.sys"
