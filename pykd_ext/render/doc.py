"""What every command's JSON document shares (the vocabulary README.md documents under "JSON output", issue 17.1;
the JSON Schemas in pykd_ext/schemas pin it): the top-level keys, the bug check object, how a
lock's kind and name are written, and when a document is complete.

    {"command", "target", "build", "complete", "interrupted", "warnings", ...the command's keys}

`complete` is false iff the run was interrupted (Ctrl+C / Ctrl+Break), hit --max-seconds or the
read budget, or any warning says a reading was cut short; the CLI exits 3 for such a document
(cli.EXIT_PARTIAL)."""
from ..target.base import BUGCHECK_NAMES

# bug checks whose first parameter says which kind of failure it is, documented per value of
# parameter 1 on Microsoft's bug check reference pages (learn.microsoft.com, "Bug Check 0x9F
# DRIVER_POWER_STATE_FAILURE", "Bug Check 0x133 DPC_WATCHDOG_VIOLATION", "Bug Check 0xC4
# DRIVER_VERIFIER_DETECTED_VIOLATION"); 0x101's parameter 1 is a tick count, no subcode
SUBCODED = (0x9F, 0x133, 0xC4)

READ_BUDGET = "read budget"


def hx(v):
    return None if v is None else "0x%x" % v


def bugcheck_dict(bc, **extra):
    """The one bug check object: {"code", "name", "args", "subcode"} then command extras."""
    if bc is None:
        return None
    d = {"code": hx(bc.code), "name": BUGCHECK_NAMES.get(bc.code), "args": [hx(a) for a in bc.args],
         "subcode": hx(bc.args[0]) if bc.code in SUBCODED and bc.args else None}
    d.update(extra)
    return d


def lock_kind(kind):
    """A lock kind as the JSON writes it: a lower-case word ("eresource", "push lock")."""
    return None if kind is None else kind.lower()


def kind_label(kind):
    """A lock kind as text prints it (the kernel's type name for an ERESOURCE)."""
    return "ERESOURCE" if kind == "eresource" else kind


def lock_name(name):
    """A lock's name, null when it has none (never "")."""
    return name or None


def interrupted_reason(why):
    """Why a run stopped early, as the documents say it: "Ctrl+C", "Ctrl+Break",
    "--max-seconds N"; None for a run that was not stopped."""
    if not why:
        return None
    if why in ("KeyboardInterrupt", "TimeLimit"):
        return "Ctrl+C" if why == "KeyboardInterrupt" else "--max-seconds"
    if why.upper().replace(" ", "") in ("CTRL+BREAK", "CTRL+C"):
        return "Ctrl+Break" if "BREAK" in why.upper() else "Ctrl+C"
    if why.endswith(" reached"):          # progress.TimeLimit: "--max-seconds 5 reached"
        return why[:-len(" reached")]
    return why


def document(command, target_name, build, interrupted=None, warnings=(), **body):
    """A command's document: the shared top-level keys first, then the command's own, then its
    warnings (a long list, last)."""
    warnings = [w if isinstance(w, dict) else w.as_dict() for w in warnings]
    why = interrupted_reason(interrupted)
    doc = {"command": command, "target": target_name, "build": build,
           "complete": why is None and not warnings, "interrupted": why}
    doc.update(body)
    doc["warnings"] = warnings
    return doc


def note_read_budget(doc, target):
    """A document made on a target whose read budget was spent is partial, and says so."""
    if getattr(target, "budget_exhausted", False):
        if doc.get("interrupted") is None:
            doc["interrupted"] = READ_BUDGET
        doc["complete"] = False
    return doc


def partial_headline(doc):
    """The first line of a partial run's text (None for a complete run): the reader learns
    before any finding that the findings are not the whole machine."""
    if doc.get("complete", True):
        return None
    n = len(doc.get("warnings") or ())
    if doc.get("interrupted"):
        return ("INTERRUPTED (%s): partial results -- the findings below cover only what was read before it"
                % doc["interrupted"])
    return "PARTIAL RESULTS: %d warning%s (listed at the end) say%s a reading was cut short" % (
        n, "" if n == 1 else "s", "s" if n == 1 else "")


def write_partial_headline(doc, w, style):
    line = partial_headline(doc)
    if line is not None:
        w(style("warn", line))
