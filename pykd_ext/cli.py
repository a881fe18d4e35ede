"""`pykd-ext <command>` and `python -m pykd_ext <command>`, also what `!py -m pykd_ext` and
the scripts in scripts/ run inside WinDbg.

The target is one of: `--target FILE` (a mock target or a recording), `--dump FILE` (a crash
dump through pykd), `--kdnet CONNECTION` (a kernel debugging connection through pykd); with
none of them, inside WinDbg/KD, the debugger's current session.

Exit status: 0 when the analysis ran (whatever it found), 2 for a bad argument or an
unusable target, 130 when interrupted before anything could be reported.
"""
import argparse
import gc
import sys

from . import __version__
from .commands import COMMANDS
from .errors import FieldNotFound, PykdExtError, TargetUnavailable, TypeNotFound, UsageError
from .progress import Progress
from .render.out import safe_stream
from .target.cache import PAGE, CachedTarget, check_unit, unit_for_link

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
        src = sp.add_argument_group("target (one of them; none inside WinDbg: its current session)")
        one = src.add_mutually_exclusive_group()
        one.add_argument("--target", metavar="FILE", help="a mock target or a recording (.json or .json.gz)")
        one.add_argument("--dump", metavar="FILE", help="a kernel crash dump, opened with pykd (Windows)")
        one.add_argument("--kdnet", metavar="CONNECTION",
                         help='a kernel debugging connection as for kd -k, e.g. "net:port=50000,key=1.2.3.4" '
                              'or "com:port=COM1,baud=115200"; waits until the target connects')
        src.add_argument("--link", metavar="PROFILE",
                         help="with --target: make every backend call wait as over a debugger link: kdnet "
                              "(1 ms, 10 MB/s), serial (115200 baud) or LATENCY_MS,BYTES_PER_S")
        src.add_argument("--read-unit", metavar="BYTES", type=_read_unit,
                         help="bytes per backend read, a power of two: 4096 (whole pages, the default: "
                              "dumps, KDNET) down to 16 (fields, each read once: a 115200-baud serial "
                              "cable, where bytes cost more than round trips); with --link, the unit that "
                              "suits the link")
        sp.add_argument("--no-color", action="store_true",
                        help="plain text: no colour, no DML links (also: NO_COLOR=1)")
        prog = sp.add_mutually_exclusive_group()
        prog.add_argument("--progress", dest="progress", action="store_true", default=None,
                          help="progress lines on stderr for scans longer than a second (default: when "
                               "stderr is a terminal, and inside WinDbg)")
        prog.add_argument("--no-progress", dest="progress", action="store_false")
        mod.add_arguments(sp)
    return p


def _read_unit(text):
    try:
        return check_unit(int(text, 0))
    except ValueError:
        raise argparse.ArgumentTypeError("a power of two from 16 to 4096 bytes, not %r" % text)


def read_unit(args):
    """The cache's read unit: --read-unit, else what suits the simulated --link, else a page."""
    if args.read_unit is not None:
        return args.read_unit
    if args.link is not None:
        from .target.link import parse_profile
        latency, bandwidth, _ = parse_profile(args.link)
        return unit_for_link(latency, bandwidth)
    return PAGE


def open_target(args, err):
    """The backend the arguments name (not yet cached)."""
    if args.link is not None and not args.target:
        raise UsageError("--link simulates a debugger link in front of a --target FILE; a real link needs none")
    if args.target:
        from .target.mock import MockTarget
        backend = MockTarget.load(args.target)
        if args.link is not None:
            from .target.link import SimulatedLink, parse_profile
            latency, bandwidth, _ = parse_profile(args.link)
            backend = SimulatedLink(backend, latency, bandwidth, sleep=True)
        return backend
    from .target import pykd_backend
    if args.dump:
        return pykd_backend.open_dump(args.dump)
    if args.kdnet is not None:
        def notify(text):
            err.write("pykd-ext: %s\n" % text)
            err.flush()
        return pykd_backend.open_kernel(args.kdnet, notify)
    session = pykd_backend.current_session()
    if session is not None:
        return session
    raise TargetUnavailable("no target: give --target FILE (a mock target or recording), --dump FILE "
                            "or --kdnet CONNECTION, or run inside WinDbg with !py")


def main(argv=None, out=None, err=None):
    out = safe_stream(out or sys.stdout)       # an unencodable name is escaped, never a traceback
    err = safe_stream(err or sys.stderr)
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
        target = CachedTarget(open_target(args, err), page_size=read_unit(args))
    except PykdExtError as e:
        err.write("pykd-ext: %s\n" % e)
        return EXIT_USAGE
    except (KeyboardInterrupt, SystemExit) as e:
        err.write("pykd-ext: %s: interrupted while opening the target (%s)\n" % (args.command, str(e) or "Ctrl+C"))
        return 130
    if args.read_unit is None and args.link is None:       # no unit chosen: say if pages prove slow
        def hint(text):
            err.write("pykd-ext: %s\n" % text)
            err.flush()
        target.notice = hint
    if args.progress if args.progress is not None else _interactive(err):
        def say(text):
            err.write(text)
            err.flush()
        target.progress = Progress(say, prefix="pykd-ext %s" % args.command)
    try:
        code = run_command(args, target, out)
        if target.progress is not None:
            target.progress.finish()
        if target.budget_exhausted:
            err.write("pykd-ext: %s: warning: stopped reading after %d reads (the read budget): this target's "
                      "structures loop or are far larger than a kernel's; the results are partial\n"
                      % (args.command, target.read_budget))
        return code
    except UsageError as e:
        err.write("pykd-ext: %s\n" % e)
        return EXIT_USAGE
    except (TypeNotFound, FieldNotFound) as e:
        err.write("pykd-ext: %s: unusable target %s: %s\n" % (args.command, _given(args, target), e))
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        err.write("pykd-ext: %s: interrupted\n" % args.command)
        return 130


def _given(args, target):
    """The target as the command line gave it: a recording is named by its file, not by the
    target it was recorded from (that name is in its output's title)."""
    if getattr(args, "target", None):
        return args.target if target.name == args.target else "%s (recorded from %s)" % (args.target, target.name)
    return target.name


def run_command(args, target, out):
    """Run a parsed command on a (cached) target with the garbage collector paused: a scan
    keeps up to millions of objects alive (pages, views, threads, locks) and generational
    collections over them cost a third of the CPU on a 100k-lock target (benchmarks/run.py).
    What the command leaves in cycles is collected when it ends."""
    paused = gc.isenabled()
    gc.disable()
    try:
        return COMMANDS[args.command].run(args, target, out)
    finally:
        if paused:
            gc.enable()


def _interactive(err):
    """Progress by default where someone watches: a terminal, or the debugger's output
    window (pykd's stream there has no isatty)."""
    isatty = getattr(err, "isatty", None)
    if isatty is None:
        return True
    try:
        return bool(isatty())
    except (OSError, ValueError):
        return False


def script_main(command):
    """What scripts/<command>.py runs: `!py <checkout>\\scripts\\<command>.py [args]` inside
    WinDbg, or `python scripts/<command>.py [args]` with the CLI's options."""
    code = main([command] + sys.argv[1:])
    if code:
        sys.exit(code)


if __name__ == "__main__":
    sys.exit(main())
