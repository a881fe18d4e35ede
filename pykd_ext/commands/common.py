"""What several commands share: address arguments."""
import argparse
import re

_ADDRESS = re.compile(r"^(0x)?([0-9a-f]+)$")


def address(text):
    """An address as WinDbg prints it: `fffffa80`0c089050`, `0xfffffa800c089050`, hex digits."""
    m = _ADDRESS.match(text.strip().lower().replace("`", ""))
    if not m or len(m.group(2)) > 16:
        raise argparse.ArgumentTypeError("not an address: %r (give hex, e.g. fffffa80`0c089050)" % text)
    return int(m.group(2), 16)
