"""The naive reader the benchmark compares with: pykd's typedVar way of reading.

No cache: every field is its own backend call (views see `whole_structures = False`), every
list link, stack range and string is read when asked for, again when asked for again, and
every symbol, stack and module look-up goes to the backend.  Running the same analysis
through it is "the same walk, done field by field": the calls it makes are what a
straightforward pykd script walking the same structures would make.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pykd_ext.target.base import Target  # noqa: E402


class NaiveReader(Target):
    whole_structures = False

    def __init__(self, backend):
        self.backend = backend
        self.name = backend.name
        self.backend_calls = 0
        self.bytes = 0

    def read(self, address, size):
        self.backend_calls += 1
        data = self.backend.read(address, size)
        self.bytes += len(data)
        return data

    def symbol(self, name):
        return self.backend.symbol(name)

    def describe(self, address):
        return self.backend.describe(address)

    def module_at(self, address):
        return self.backend.module_at(address)

    def layouts(self):
        return self.backend.layouts()

    def processors(self):
        return self.backend.processors()

    def stack(self, thread):
        return self.backend.stack(thread)

    def bugcheck(self):
        return self.backend.bugcheck()
