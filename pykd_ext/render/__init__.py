"""Renderers: the same findings as text (tabulate, colorama), JSON or DOT."""
