"""Typed views over cached target bytes, and walkers, one module per subsystem."""
