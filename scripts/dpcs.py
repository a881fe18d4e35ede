"""!py entry script for `dpcs`: `!py <checkout>\\scripts\\dpcs.py [args]` inside WinDbg (or
`!py dpcs [args]` with scripts\\ on PATH), or `python scripts/dpcs.py [args]` from a plain
Python with the CLI's options."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pykd_ext.cli import script_main  # noqa: E402

script_main("dpcs")
