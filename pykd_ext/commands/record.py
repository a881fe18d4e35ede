"""record: run commands over a target and keep exactly what they read, as a mock target.

Replaying the recording (`--target FILE`) gives the same output for the recorded commands,
byte for byte but for the title's target name ("case.json.gz (recorded from MEMORY.DMP)"), on
any OS, without the dump or the debugger.

Examples:
  pykd-ext record --dump C:\\Windows\\MEMORY.DMP -o case.json.gz
  pykd-ext record --kdnet "net:port=50000,key=1.2.3.4" -o case.json.gz deadlock
  !py -m pykd_ext record -o case.json.gz deadlock          (inside WinDbg)
  pykd-ext deadlock --target case.json.gz                    (the replay)

What a recording holds (it is kernel memory: read it before you send it anywhere): the bytes
of every structure the commands read -- process and thread objects (image names, thread ids,
start addresses), kernel stacks of the threads unwound, lock and wait objects, device and
driver objects and their names -- plus the symbols and addresses looked up, module names and
ranges, the structure layouts used, processor blocks and the bug check code and arguments.
It holds no user-mode memory, no file contents and no memory the commands did not read.

Ctrl+C (Ctrl+Break inside WinDbg, --max-seconds) stops the recording at once: no further
command runs, what was read so far is written, the file says it is partial ("partial":
"interrupted during deadlock (Ctrl+C)"), the first line printed is "INTERRUPTED ...: partial
recording" and the exit status is 3.  Every replay of a partial recording warns first (kind
"partial-recording" in JSON): memory it never read is simply missing there.
"""
import io
import os

from ..errors import FieldNotFound, TypeNotFound, UsageError
from ..render.doc import interrupted_reason
from ..target.base import wrapped
from ..target.mock import partial_recording, save_document
from ..target.record import RecordingTarget

NAME = "record"
EXIT_PARTIAL = 3        # the project's "partial results" status: the recording was interrupted
HELP = "run commands and write what they read as a replayable mock target"


def add_arguments(p):
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="the recording to write (.json.gz: gzip, else plain JSON)")
    p.add_argument("commands", nargs="*", metavar="COMMAND",
                   help='the commands to record, each with its arguments in one quoted word '
                        '("irp fffffa8008f5cc10"); default: every command that needs no argument')


def check_arguments(args):
    """Called by the CLI before the target is opened (a dump loaded or a KDNET session
    attached): the output path must be writable first."""
    _check_output(args)


def _check_output(args):
    """The output is checked before anything is read (a long live capture must not be lost to
    a typo at the end), and never overwrites the target it records."""
    path = os.path.abspath(args.output)
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise UsageError("record: cannot write %s: no folder %s" % (args.output, folder))
    if not os.access(folder, os.W_OK):
        raise UsageError("record: cannot write %s: the folder %s is not writable" % (args.output, folder))
    if os.path.isdir(path):
        raise UsageError("record: cannot write %s: it is a folder" % args.output)
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise UsageError("record: cannot write %s: the file is not writable" % args.output)
    for given in (getattr(args, "target", None), getattr(args, "dump", None)):
        if given and os.path.exists(given) and os.path.exists(path) and os.path.samefile(given, path):
            raise UsageError("record: %s is the target being recorded: give another -o" % args.output)


def run(args, target, out):
    from . import COMMANDS
    from ..cli import UsageErrorExit, build_parser

    _check_output(args)

    parser = build_parser()
    if args.commands:
        runs = [c.split() for c in args.commands if c.split()]
    else:
        runs = [[n] for n, m in COMMANDS.items() if n != NAME and not getattr(m, "NEEDS_ARGUMENTS", False)]
    bad = [r[0] for r in runs if r[0] not in COMMANDS or r[0] == NAME]
    if bad:
        raise UsageError("record: no command %s (commands: %s)" % (
            ", ".join(bad), ", ".join(n for n in COMMANDS if n != NAME)))
    subs = []
    for r in runs:
        try:
            subs.append((" ".join(r), parser.parse_args(r + ["--no-color"])))
        except UsageErrorExit as e:            # the parser's one-line usage error, said once
            msg = str(e)
            for prefix in ("pykd-ext: error: ", "pykd-ext: "):
                if msg.startswith(prefix):
                    msg = msg[len(prefix):]
            raise UsageError("record: %s: %s" % (" ".join(r), msg))
    rec = RecordingTarget(target)
    results = []
    interrupted = None
    held = wrapped(target, "recorded_commands")      # recording a recording: only what it holds
    for name, sub in subs:
        if held is not None and sub.command not in held:
            results.append((name, "not recorded: %s holds no data for %s (it recorded: %s)" % (
                target.name, sub.command, ", ".join(held) or "nothing")))
            continue
        try:
            COMMANDS[sub.command].run(sub, rec, io.StringIO())
        except (TypeNotFound, FieldNotFound) as e:
            results.append((name, "not recorded: unusable target: %s" % e))
            continue
        except (KeyboardInterrupt, SystemExit) as e:      # a command that does not catch it
            rec.note_interrupt(str(e) or type(e).__name__)
        if rec.interrupted is not None:
            # the analysis may have caught the break and reported what it read before
            # (progress.stopped): either way the user asked to stop -- no further command
            interrupted = interrupted_reason(rec.interrupted)
            results.append((name, "interrupted (%s): recorded up to there" % interrupted))
            break
        results.append((name, "recorded"))
    skipped = [n for n, _ in subs[len(results):]]
    partial = None
    if interrupted is not None:
        partial = "interrupted during %s (%s)" % (results[-1][0], interrupted)
    inherited = partial_recording(target)
    if inherited is not None:      # recorded from a partial recording: this one is no better
        partial = "%s; recorded from a partial recording (%s)" % (partial, inherited) if partial else \
            "recorded from a partial recording (%s)" % inherited
    comment = "recorded by pykd_ext record from %s: %s" % (target.name, ", ".join(n for n, _ in results))
    try:
        done = [n.split()[0] for n, what in results if not what.startswith("not recorded")]
        save_document(rec.document(comment, sorted(set(done)), partial), args.output)
    except OSError as e:
        raise UsageError("record: cannot write %s: %s" % (args.output, e.strerror or e))
    s = rec.summary()
    if interrupted is not None:
        out.write("INTERRUPTED (%s): partial recording -- %s holds what was read before the interruption "
                  "during %s; %s; every replay of it says it is partial\n" % (
                      interrupted, args.output, results[-1][0],
                      "not run: %s" % ", ".join(skipped) if skipped else "no command was left to run"))
    out.write("recorded %s into %s\n" % (target.name, args.output))
    for name, what in results:
        out.write("  %-10s %s\n" % (name, what))
    for name in skipped:
        out.write("  %-10s not run: interrupted before it\n" % name)
    out.write("  %d memory ranges (%d bytes), %d symbols, %d symbolized addresses, %d modules, "
              "%d types, %d enums, %d stacks, %d processors, %s\n" % (
                  s["ranges"], s["bytes"], s["symbols"], s["described"], s["modules"], s["types"],
                  s["enums"], s["stacks"], s["processors"],
                  "bug check data" if s["bugcheck"] else "no bug check"))
    out.write("replay: pykd-ext <command> --target %s\n" % args.output)
    return EXIT_PARTIAL if interrupted is not None else 0

