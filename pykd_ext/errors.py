"""The few error types every layer shares.

Every backend raises MemoryFault for an unreadable address, whatever its own exception was,
so analyses handle one fault type that always carries the address.
"""


class PykdExtError(Exception):
    """Base of the package's own errors."""


class MemoryFault(PykdExtError):
    """Reading `size` bytes at `address` failed; `address` is the first byte that faulted."""

    def __init__(self, address, size=1, message=None):
        self.address = address
        self.size = size
        super().__init__(message or "memory at 0x%x is unreadable" % address)


class SymbolNotFound(PykdExtError):
    def __init__(self, name):
        self.name = name
        super().__init__("symbol %s not found" % name)


class TypeNotFound(PykdExtError):
    def __init__(self, name):
        self.name = name
        super().__init__("type %s not found" % name)


class FieldNotFound(PykdExtError, KeyError):
    def __init__(self, typename, field):
        self.typename = typename
        self.field = field
        PykdExtError.__init__(self, "%s has no field %s" % (typename, field))

    def __str__(self):
        return self.args[0]


class TargetFileError(PykdExtError):
    """A mock target file is unusable: message names the file and what is wrong."""


class TargetUnavailable(PykdExtError):
    """No target could be opened (pykd missing, a dump that does not load, a refused
    connection, not a kernel session): the message says which and why."""



class UsageError(PykdExtError):
    """A bad argument found after parsing (an unknown command name, an unwritable output)."""
