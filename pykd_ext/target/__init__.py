"""The read-only target protocol, its page cache and its backends."""
from .base import BugCheck, Frame, Module, Processor, Target
from .cache import CachedTarget

__all__ = ["BugCheck", "Frame", "Module", "Processor", "Target", "CachedTarget"]
