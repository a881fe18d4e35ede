"""!py entry script: `!py <checkout>\\scripts\\deadlock.py [args]` inside WinDbg, or
`python scripts/deadlock.py --target F` from a plain Python (same options as the CLI)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pykd_ext.cli import main  # noqa: E402

if __name__ == "__main__":
    code = main(["deadlock"] + sys.argv[1:])
    if code:
        sys.exit(code)
