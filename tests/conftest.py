import io
import os

import pytest

from pykd_ext.cli import main
from pykd_ext.target.cache import CachedTarget

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MOCKS = os.path.join(ROOT, "mock_targets")

WIN7 = "win7sp1-x64-6.1.7601.24540"
WIN81 = "win81-x64-6.3.9600.20237"
WIN10 = "win10-22h2-x64-10.0.19041.3570"
WIN11 = "win11-21h2-x64-10.0.22000.2538"
BUILDS = [WIN7, WIN81, WIN10, WIN11]


def mock(name):
    return os.path.join(MOCKS, name + ".json.gz")


def run_cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def cached(builder):
    """A CachedTarget over what the builder laid out (through the file format, as loaded)."""
    return CachedTarget(builder.target())


@pytest.fixture(autouse=True)
def _no_color_env(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
