"""Self-waits recognised by the shape of a stack: a thread waits for something it is itself
preventing, with no lock to show for it.  The patterns are data: each names the routine the
thread waits in, the kernel routine (deeper on the same stack) that shows what the thread is
inside of, and the public statement that the combination cannot complete.

A thread matches when, on its stack, a `wait_in` frame lies above (is called from) an `inside`
frame; the driver frame between them is the callback that made the call.  A match is a
one-thread deadlock with evidence `stack-pattern`.
"""

#: the patterns; every entry cites where the deadlock is documented
SELF_WAITS = (
    {
        "name": "registry callback unregistering itself",
        "wait_in": ("nt!CmUnRegisterCallback",),
        "inside": ("nt!CmpCallCallBacks", "nt!CmpCallCallBacksEx"),
        "explain": "CmUnRegisterCallback called from inside a registry callback waits for the "
                   "callbacks in progress -- its own among them",
        "source": "Microsoft docs, CmUnRegisterCallback: 'A driver must not call CmUnRegisterCallback "
                  "from its implementation of the RegistryCallback routine. That call will result in "
                  "a deadlock.'",
    },
    {
        "name": "process-notify callback removing itself",
        "wait_in": ("nt!PsSetCreateProcessNotifyRoutine", "nt!PsSetCreateProcessNotifyRoutineEx",
                    "nt!PsSetCreateProcessNotifyRoutineEx2", "nt!PspSetCreateProcessNotifyRoutine"),
        "inside": ("nt!PspCallProcessNotifyRoutines",),
        "explain": "removing a process-notify routine waits for all in-flight callbacks to complete, "
                   "and this thread is inside one",
        "source": "Microsoft docs, PsSetCreateProcessNotifyRoutineEx: 'If Remove is TRUE, the system also "
                  "waits for all in-flight callback routines to complete' and 'The driver must not make "
                  "this call from within its implementation of the callback routine.'",
    },
    {
        "name": "thread-notify callback removing itself",
        "wait_in": ("nt!PsRemoveCreateThreadNotifyRoutine",),
        "inside": ("nt!PspCallThreadNotifyRoutines",),
        "explain": "PsRemoveCreateThreadNotifyRoutine waits until the running callback exits, and this "
                   "thread is that callback",
        "source": "Microsoft docs, PsRemoveCreateThreadNotifyRoutine: 'If the driver's callback routine is "
                  "currently running, PsRemoveCreateThreadNotifyRoutine waits until the callback routine "
                  "exits ... Therefore, the callback routine itself must not call' it.",
    },
    {
        "name": "image-load callback removing itself",
        "wait_in": ("nt!PsRemoveLoadImageNotifyRoutine",),
        "inside": ("nt!PsCallImageNotifyRoutines",),
        "explain": "PsRemoveLoadImageNotifyRoutine waits until the running callback exits, and this "
                   "thread is that callback",
        "source": "Microsoft docs, PsRemoveLoadImageNotifyRoutine: 'If the driver's callback routine is "
                  "currently running, PsRemoveLoadImageNotifyRoutine waits until the callback routine "
                  "exits ... Therefore, the callback routine itself must not call' it.",
    },
)

#: a waiting thread with no lock edge is unwound for the patterns only when its wait reason is
#: one these routines' waits can have (rundown and executive waits), and at most this many:
#: each unwind is a debugger round trip on a live target
PATTERN_WAIT_REASONS = ("Executive", "WrRundown", "WrPushLock", "WrExecutive")
MAX_PATTERN_THREADS = 512


def _index(names):
    return {n.lower() for n in names}


_COMPILED = [(p, _index(p["wait_in"]), _index(p["inside"])) for p in SELF_WAITS]


def match(frames):
    """(pattern, callback frame) when `frames` (innermost first) show a self-wait, else None."""
    funcs = [(fr.function or "").lower() for fr in frames]
    for pattern, wait_in, inside in _COMPILED:
        top = next((i for i, f in enumerate(funcs) if f in wait_in), None)
        if top is None:
            continue
        below = next((i for i in range(top + 1, len(funcs)) if funcs[i] in inside), None)
        if below is None:
            continue
        callback = next((frames[i] for i in range(top + 1, below)
                         if frames[i].module is not None and not frames[i].is_kernel), None)
        return pattern, callback
    return None
