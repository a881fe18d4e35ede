"""pykd_ext: kernel-debugger extension commands that diagnose Windows kernel hangs and bug checks.

Layers (each reads only the one below it):
    target    -- read-only protocol: bytes, symbols, layouts, stacks, processors, bug check
    kernel    -- typed views over cached bytes and guarded list walkers, one module per subsystem
    analysis  -- pure functions from views to typed findings
    render    -- text, JSON, DOT renderers for the same findings
    commands  -- argument parsing -> analyses -> renderer
"""
__version__ = "0.1.0"
