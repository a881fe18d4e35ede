"""!py entry script for `triage`: `!py <checkout>\\scripts\\triage.py [args]` inside WinDbg (or
`!py triage [args]` with scripts\\ on PATH), or `python scripts/triage.py [args]` from a plain
Python with the CLI's options.

The pykd bootstrapper runs a script file with PyRun_FileExFlags into a fresh sub-interpreter's
`__main__`, which has no `__file__`; sys.argv[0] holds the script's full path there
(pykd-ext sources/windbgext.cpp:443-459, 472-483).  So the checkout is found from `__file__`
when Python set it, else from sys.argv[0], and put on sys.path only when it holds pykd_ext
(a script copied elsewhere uses the installed package)."""
import os
import sys

_here = globals().get("__file__") or (sys.argv[0] if sys.argv and sys.argv[0] else "")
_root = os.path.dirname(os.path.dirname(os.path.abspath(_here))) if _here else ""
if _root and os.path.isfile(os.path.join(_root, "pykd_ext", "__init__.py")):
    sys.path.insert(0, _root)

from pykd_ext.cli import script_main  # noqa: E402

script_main("triage")
