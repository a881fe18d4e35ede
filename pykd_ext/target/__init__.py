"""The read-only target protocol, its page cache and its backends."""
from .base import BugCheck, Frame, Module, Processor, Target  # noqa: F401
from .cache import CachedTarget  # noqa: F401
