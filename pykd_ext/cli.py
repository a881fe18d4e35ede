"""`pykd-ext <command>` and `python -m pykd_ext <command>`.

Exit status: 0 when the analysis ran (whatever it found), 2 for a bad argument or an
unusable target, 130 when interrupted before anything could be reported.
"""
import argparse
import sys

from . import __version__
from .commands import COMMANDS
from .errors import PykdExtError, TargetFileError, TypeNotFound, FieldNotFound
from .target.cache import CachedTarget

EXIT_OK, EXIT_USAGE = 0, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageErrorExit("%s: error: %s" % (self.prog, message))


class UsageErrorExit(Exception):
    pass


def build_parser():
    p = _Parser(prog="pykd-ext", description="Windows kernel hang and bug check analysis (pykd_ext %s)"
                % __version__)
    p.add_argument("--version", action="version", version="pykd_ext " + __version__)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, mod in COMMANDS.items():
        sp = sub.add_parser(name, help=mod.HELP, description=(mod.__doc__ or "").strip(),
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        sp.error = p.error
        src = sp.add_argument_group("target")
        src.add_argument("--target", metavar="FILE", help="a mock target file (.json or .json.gz)")
        sp.add_argument("--no-color", action="store_true", help="plain text (also: NO_COLOR=1)")
        mod.add_arguments(sp)
    return p


def open_target(args):
    if args.target:
        from .target.mock import MockTarget
        return CachedTarget(MockTarget.load(args.target))
    raise TargetFileError("no target: give --target FILE (a mock target); running on a live kernel "
                          "or a dump needs the pykd backend")


def main(argv=None, out=None, err=None):
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except UsageErrorExit as e:
        err.write("%s\n" % e)
        return EXIT_USAGE
    if not args.command:
        parser.print_help(err)
        return EXIT_USAGE
    try:
        target = open_target(args)
    except PykdExtError as e:
        err.write("pykd-ext: %s\n" % e)
        return EXIT_USAGE
    try:
        return COMMANDS[args.command].run(args, target, out)
    except (TypeNotFound, FieldNotFound) as e:
        err.write("pykd-ext: %s: unusable target %s: %s\n" % (args.command, target.name, e))
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        err.write("pykd-ext: %s: interrupted\n" % args.command)
        return 130


if __name__ == "__main__":
    sys.exit(main())
