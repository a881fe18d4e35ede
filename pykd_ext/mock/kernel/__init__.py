"""The scenario builder's rooms, one per kernel subsystem (as pykd_ext.kernel has)."""
