"""SIGINT and SIGTERM stop llem the same way, whatever the process inherited, and are remembered.

Why explicit: a non-interactive shell starts background jobs (`&`, nohup, cron, scripts) with
SIGINT ignored, and Python then installs no KeyboardInterrupt handler — `kill -INT` would do
nothing. Both signals raise KeyboardInterrupt here (the study loop stops its runs, marks the
manifest interrupted), and the name of the signal is kept so the manifest can say which one.
"""
from __future__ import annotations

import signal
import threading

_received: list[str] = []
# Set when the study is stopping: runs waited on by worker threads (parallel studies) never see the
# KeyboardInterrupt of the main thread, so their runners poll this and stop their process/container.
stop_requested = threading.Event()


def _interrupt(signum, frame):
    _received.append(signal.Signals(signum).name)
    raise KeyboardInterrupt


def install() -> None:
    """Call from the main thread (signal handlers can only be set there).

    SIGHUP (the terminal or SSH session closed) stops the study the same way, unless it was
    ignored on purpose (`nohup`): then it stays ignored."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        signal.signal(signal.SIGHUP, _interrupt)


def stop_signal() -> str:
    """The signal that stopped this process (SIGINT when a KeyboardInterrupt came another way)."""
    return _received[-1] if _received else "SIGINT"
