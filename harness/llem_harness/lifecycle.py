"""How the harness process stops: on SIGINT/SIGTERM whatever it inherited, and with its llem.

Why explicit handlers: a shell starts background jobs (`&`, nohup, cron, scripts) with SIGINT
ignored, and Python then installs no KeyboardInterrupt handler; the host's graceful stop
(SIGINT to the harness group) would do nothing and the harness would be SIGKILLed without
writing error.json. Both signals raise here, so error.json always says what stopped the run.

Why the parent-death signal: the local runner starts the harness in its own session (so a
timeout can kill its whole group), which also lets it outlive an llem killed by SIGKILL and go
on loading the device the next study measures. The kernel sends SIGTERM when the process that
started it dies. Not in a container (its parent is the container's init; the host's watchdog
removes the container instead).
"""
from __future__ import annotations

import ctypes
import errno
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
ORCHESTRATOR_PID_ENV = "LLEM_ORCHESTRATOR_PID"
PARENT_PID_ENV = "LLEM_HARNESS_PARENT_PID"  # set by the pre-imported worker (worker.py) in the harness it forks
STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a timeout, `kill`, Slurm's scancel, or the death of llem): stop like Ctrl-C."""


class ParentDied(Terminated):
    """The kernel's parent-death SIGTERM: the pre-imported worker (or llem) that started the harness died."""


def _raise_for(signum, frame):
    name = signal.Signals(signum).name
    if signum == signal.SIGINT:
        raise KeyboardInterrupt(f"stopped by {name}")
    died = parent_died()
    if died:
        raise ParentDied(died)
    raise Terminated(f"stopped by {name}")


def parent_died() -> str | None:
    """Why a SIGTERM came, when it is the kernel's parent-death signal: the process that started this
    harness (the pre-imported worker, or llem) is gone — nobody sent SIGTERM, and saying "stopped by
    SIGTERM" would send the reader looking for who did. The kernel re-parents before signalling, so the
    parent differs from the one recorded at the start."""
    if os.environ.get("LLEM_IN_CONTAINER") == "1" or not sys.platform.startswith("linux"):
        return None
    worker = os.environ.get(PARENT_PID_ENV, "")
    parent = worker or os.environ.get(ORCHESTRATOR_PID_ENV, "")
    if not parent.isdigit() or os.getppid() == int(parent):
        return None
    if worker:
        return (f"the pre-imported worker (pid {parent}) that started this harness died while it ran (killed, "
                "e.g. by the OOM killer or a user); the kernel then stopped the harness")
    return f"llem (pid {parent}) that started this harness died while it ran; the kernel then stopped the harness"


def install_signal_handlers() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _raise_for)


def ignore_further_signals() -> None:
    """While error.json is written: the host's SIGKILL after its grace is the only way to cut it short."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def stop_with_parent() -> None:
    """Ask the kernel for SIGTERM when llem dies; stop now if it is already gone."""
    owner = os.environ.get(ORCHESTRATOR_PID_ENV, "")
    if not owner.isdigit() or os.environ.get("LLEM_IN_CONTAINER") == "1" or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return
    # A harness forked by the pre-imported worker (worker.py) dies with that worker, which dies with llem.
    parent = os.environ.get(PARENT_PID_ENV, owner)
    if not parent.isdigit() or os.getppid() != int(parent):  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def storage_failure(exc: BaseException) -> OSError | None:
    """The out-of-space OSError behind `exc` (itself or a cause/context), if any."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None
