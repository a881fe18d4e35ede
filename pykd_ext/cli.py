"""`pykd-ext <command>` and `python -m pykd_ext <command>`, also what `!py -m pykd_ext` and
the scripts in scripts/ run inside WinDbg.

The target is one of: `--target FILE` (a mock target or a recording), `--dump FILE` (a crash
dump through pykd), `--kdnet CONNECTION` (a kernel debugging connection through pykd); with
none of them, inside WinDbg/KD, the debugger's current session.

Exit status (the same for text and JSON output):
  0    the analysis ran to the end and its results are complete (whatever it found)
  3    the results are partial: printed, and the document says "complete": false -- the run was
       interrupted (Ctrl+C / Ctrl+Break), hit --max-seconds or the read budget, or a warning says
       a reading was cut short (a list that loops, an unreadable structure); the text says so on
       its first line
  2    unusable input: a bad argument, a target that cannot be opened or lacks the types needed
  130  interrupted before anything could be reported
Commands decide 0 or 3 from their document (commands/common.status); `_main` makes sure a run
that hit --max-seconds or the read budget never exits 0.
"""
import argparse
import gc
import io
import json
import sys

from . import __version__
from .commands import COMMANDS
from .commands.common import EXIT_OK, EXIT_PARTIAL
from .errors import FieldNotFound, PykdExtError, TargetUnavailable, TypeNotFound, UsageError
from .progress import STOP_CTRL_BREAK, STOP_CTRL_C, STOP_NONE, Progress
from .render.out import for_debugger, safe_stream
from .render.style import FORCE, text_output
from .target.cache import PAGE, CachedTarget, check_unit, unit_for_link
from .target.mock import partial_recording

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130


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
        src.add_argument("--symbol-path", metavar="PATH",
                         help="with --dump or --kdnet: the debugger's symbol path (as for .sympath); "
                              "default: _NT_SYMBOL_PATH, else srv*%%LOCALAPPDATA%%\\pykd_ext\\symbols*"
                              "https://msdl.microsoft.com/download/symbols")
        src.add_argument("--leave-broken", action="store_true",
                         help="with --kdnet: leave the target broken in when the command ends (default: "
                              "resume it)")
        src.add_argument("--link", metavar="PROFILE",
                         help="with --target: make every backend call wait as over a debugger link: kdnet "
                              "(1 ms, 10 MB/s), serial (115200 baud) or LATENCY_MS,BYTES_PER_S")
        src.add_argument("--read-unit", metavar="BYTES", type=_read_unit,
                         help="bytes per backend read, a power of two: 4096 (whole pages, the default: "
                              "dumps, KDNET) down to 16 (fields, each read once: a 115200-baud serial "
                              "cable, where bytes cost more than round trips); with --link, the unit that "
                              "suits the link")
        colour = sp.add_mutually_exclusive_group()
        colour.add_argument("--no-color", action="store_true",
                            help="plain text: no colour, no DML links (also: NO_COLOR=1)")
        colour.add_argument("--color", dest="no_color", action="store_const", const=FORCE,
                            help="colours even into a file or a pager, e.g. | less -R (also: FORCE_COLOR=1)")
        prog = sp.add_mutually_exclusive_group()
        prog.add_argument("--progress", dest="progress", action="store_true", default=None,
                          help="progress lines on stderr for scans longer than a second (default: when "
                               "stderr is a terminal, and inside WinDbg)")
        prog.add_argument("--no-progress", dest="progress", action="store_false")
        sp.add_argument("--max-seconds", metavar="N", type=_seconds,
                        help="stop the scan after N seconds and print what was found, with a warning "
                             "(inside WinDbg on Python 3.9+ the one way to bound a scan: Ctrl+Break "
                             "does not reach the script there)")
        mod.add_arguments(sp)
    return p


def _read_unit(text):
    try:
        return check_unit(int(text, 0))
    except ValueError:
        raise argparse.ArgumentTypeError("a power of two from 16 to 4096 bytes, not %r" % text)


def _seconds(text):
    try:
        value = float(text)
    except ValueError:
        value = -1
    if not value > 0:
        raise argparse.ArgumentTypeError("a number of seconds above 0, not %r" % text)
    return value


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
    if args.symbol_path is not None and not (args.dump or args.kdnet is not None):
        raise UsageError("--symbol-path is for a standalone --dump or --kdnet session; inside WinDbg use "
                         ".sympath, a --target file needs no symbols")
    if args.leave_broken and args.kdnet is None:
        raise UsageError("--leave-broken is for --kdnet: only a kernel connection is broken in")
    if args.target:
        from .target.mock import MockTarget
        backend = MockTarget.load(args.target)
        if args.link is not None:
            from .target.link import SimulatedLink, parse_profile
            latency, bandwidth, _ = parse_profile(args.link)
            backend = SimulatedLink(backend, latency, bandwidth, sleep=True)
        return backend
    from .target import pykd_backend

    def notify(text):
        err.write("pykd-ext: %s\n" % text)
        err.flush()
    if args.dump:
        return pykd_backend.open_dump(args.dump, notify, args.symbol_path)
    if args.kdnet is not None:
        return pykd_backend.open_kernel(args.kdnet, notify, args.symbol_path)
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
    wrapped = for_debugger(out)      # inside WinDbg: the output in one debugger call
    try:
        return _main(args, wrapped, err)
    finally:
        if wrapped is not out:
            wrapped.close()


def _main(args, out, err):
    check = getattr(COMMANDS[args.command], "check_arguments", None)
    if check is not None:            # what can be checked before a dump is loaded or a session attached
        try:
            check(args)
        except UsageError as e:
            err.write("pykd-ext: %s\n" % e)
            return EXIT_USAGE
    try:
        backend = open_target(args, err)
        target = CachedTarget(backend, page_size=read_unit(args))
    except PykdExtError as e:
        err.write("pykd-ext: %s\n" % e)
        return EXIT_USAGE
    except (KeyboardInterrupt, SystemExit) as e:
        err.write("pykd-ext: %s: interrupted while opening the target (%s)\n" % (args.command, str(e) or "Ctrl+C"))
        return EXIT_INTERRUPTED
    recorded = getattr(backend, "recorded_commands", None)
    if recorded is not None and args.command != "record" and args.command not in recorded:
        # a recording holds only what its commands read: another command would get confident
        # empty answers from memory that was never read
        err.write("pykd-ext: %s: %s is a recording that holds no data for %s (it recorded: %s); record it with "
                  "`pykd-ext record ... %s`\n" % (args.command, args.target, args.command,
                                                   ", ".join(recorded) or "nothing", args.command))
        return EXIT_USAGE
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
        target.progress.stop_hint = stop_hint(err)
    if args.max_seconds is not None:
        if target.progress is None:
            target.progress = Progress(None, prefix="pykd-ext %s" % args.command)
        target.progress.set_deadline(args.max_seconds)
    recording_partial = partial_recording(backend)
    try:
        if recording_partial is None:
            code = run_command(args, target, out)
        else:
            code = run_partial(args, target, out, recording_partial)
        # what a partial recording did not read is missing: its answers are partial too
        partial = recording_partial is not None
        if target.progress is not None:
            target.progress.finish()
            if target.progress.timed_out:
                partial = True
                err.write("pykd-ext: %s: --max-seconds %g reached: the results are partial (see the "
                          "warning in the report)\n" % (args.command, args.max_seconds))
        if target.budget_exhausted:
            partial = True
            err.write("pykd-ext: %s: warning: stopped reading after %d reads (the read budget): this target's "
                      "structures loop or are far larger than a kernel's; the results are partial\n"
                      % (args.command, target.read_budget))
        return EXIT_PARTIAL if partial and code == EXIT_OK else code
    except UsageError as e:
        err.write("pykd-ext: %s\n" % e)
        return EXIT_USAGE
    except (TypeNotFound, FieldNotFound) as e:
        hint = getattr(backend, "symbol_hint", None)
        err.write("pykd-ext: %s: unusable target %s: %s%s%s\n" % (
            args.command, target.name, e, "; " + hint() if hint else "",
            "; it is a partial recording (%s)" % recording_partial if recording_partial else ""))
        return EXIT_USAGE
    except PykdExtError as e:
        err.write("pykd-ext: %s: %s\n" % (args.command, e))
        return EXIT_USAGE
    except getattr(backend, "errors", ()) as e:      # pykd's own, from a call not mapped yet
        err.write("pykd-ext: %s: %s: %s: %s\n" % (args.command, target.name, type(e).__name__,
                                                   str(e).strip().splitlines()[0] if str(e).strip() else "-"))
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        err.write("pykd-ext: %s: interrupted\n" % args.command)
        return EXIT_INTERRUPTED
    finally:
        release = getattr(backend, "release", None)
        if release is not None:
            release(leave_broken=args.leave_broken, notify=_say(err))


def run_partial(args, target, out, why):
    """Run a command over a partial recording (an interrupted `record`): its output says so
    first -- a warning line, a DOT comment, or the first of the JSON document's warnings
    (kind "partial-recording", and "complete" false) -- since what the recording did not read
    is simply absent: a clean or empty answer from it proves nothing."""
    message = ("%s is a partial recording (%s): what it did not read is missing, so an empty or "
               "clean answer from it proves nothing" % (args.target, why))
    fmt = getattr(args, "format", "text")
    if fmt == "json":
        buf = io.StringIO()
        code = run_command(args, target, buf)
        doc = json.loads(buf.getvalue())
        doc.setdefault("warnings", []).insert(0, {"kind": "partial-recording", "address": None,
                                                  "message": message})
        if "complete" in doc:
            doc["complete"] = False
        json.dump(doc, out, indent=2)
        out.write("\n")
        return code
    if fmt == "dot":
        out.write("// WARNING (partial-recording): %s\n" % message)
        return run_command(args, target, out)
    style, stream = text_output(out, args.no_color, dict)
    line = style("warn", "WARNING (partial-recording): %s" % message) + "\n"
    if hasattr(out, "writedml"):          # the debugger's window: said first, then the report
        stream.write(line)
        return run_command(args, target, out)
    # elsewhere right under the title, where every partial run says so
    buf = io.StringIO()
    code = run_command(args, target, buf)
    title, nl, rest = buf.getvalue().partition("\n")
    out.write(title + nl + line + rest)
    return code


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


def _say(err):
    def notify(text):
        err.write("pykd-ext: %s\n" % text)
        err.flush()
    return notify


def in_debugger(stream):
    """Whether `stream` is the debugger's output window: the bootstrapper's DbgOut has
    `writedml` and an `isatty()` that says False (pykd-ext sources/dbgout.h:37-47, 60-62)."""
    return hasattr(stream, "writedml")


def stop_hint(err, version=None):
    """What really stops a long scan here, for the progress lines.  Inside WinDbg the
    bootstrapper's watcher queues SystemExit("CTRL+BREAK") with Py_AddPendingCall from its
    own thread (pykd-ext sources/windbgext.cpp:34-88); since CPython 3.9 pending calls belong
    to an interpreter and that call lands on the main one, never on the script's
    sub-interpreter (windbgext.cpp:415, 429): a break reaches scripts on 3.8 only."""
    version = version or sys.version_info[:2]
    if in_debugger(err):
        return STOP_CTRL_BREAK if tuple(version) < (3, 9) else STOP_NONE
    return STOP_CTRL_C


def _interactive(err):
    """Progress by default where someone watches: a terminal, or the debugger's output
    window (pykd's stream there has writedml, and isatty() False)."""
    if in_debugger(err):
        return True
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
