"""Colour for text output: on for a console, off for pipes and files, --no-color, NO_COLOR."""
import os
import sys


class Style(object):
    def __init__(self, color):
        self.color = color
        if color:
            import colorama
            fix = getattr(colorama, "just_fix_windows_console", None)
            if fix is not None:
                fix()
            self._codes = {"bad": colorama.Fore.RED + colorama.Style.BRIGHT,
                           "warn": colorama.Fore.YELLOW, "head": colorama.Style.BRIGHT,
                           "addr": colorama.Fore.CYAN, "drv": colorama.Fore.MAGENTA + colorama.Style.BRIGHT,
                           "dim": colorama.Style.DIM}
            self._reset = colorama.Style.RESET_ALL

    def __call__(self, kind, text):
        if not self.color:
            return text
        return self._codes[kind] + text + self._reset


def want_color(stream, no_color_flag):
    if no_color_flag or os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and stream is sys.stdout
