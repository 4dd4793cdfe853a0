"""What the harness tells the host while it runs: one JSON event per stdout line, and the stage.

The host's progress display and silence detector read these lines (domain/progress.py encodes
them); `Stage.name` is also what error.json reports as the stage a failed run stopped in. A stage is a
step of the run's lifecycle, in order: starting, environment, pre_load_idle, importing (offline), loading or
server_starting, loaded_idle, warmup, measuring, writing (measured_run.py, process_entry.py). "Phase"
means only prefill or decode of a request (measurement/phases.py).

Why a channel: the lines go through a pipe that llem drains. A stopped llem (Ctrl-Z, `kill -STOP`,
a blocked terminal) stops draining it; a full pipe then blocks whoever writes, and a harness that
wrote from its own thread blocked *inside the measured window*, stretching it. In the harness
process (`open_channel`, called by process_entry.main) the pipe is written by one writer thread only:
`emit` queues the line and returns at once; the process's own fd 1 is pointed at its stderr log,
so a library's print cannot block on the pipe either. The writer times each write: how long the
pipe was not drained is reported (`blocked_note`), and `close_channel` waits until every queued
line is written (the host reads them all, in order, once it runs again). Outside the harness
process (tests calling the harness in-process) `emit` writes to sys.stdout directly.
"""
from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
from datetime import datetime, timezone

from llenergymeasure.domain.progress import encode_event

log = logging.getLogger("llem_harness")
BLOCKED_NOTE_S = 0.5  # a write that waited longer is a pipe llem did not drain


class _Channel:
    """The progress pipe, written by one thread: emit never waits for the reader."""

    def __init__(self, fd: int, saved_stdout_fd: int):
        self.fd, self.saved_stdout_fd = fd, saved_stdout_fd
        self.lines: queue.SimpleQueue = queue.SimpleQueue()
        self.blocked_s = 0.0               # total time writes waited for llem to drain the pipe
        self.writing_since: float | None = None  # monotonic start of the write in progress
        self.broken = False
        self.thread = threading.Thread(target=self._run, daemon=True, name="llem-progress")
        self.thread.start()

    def _run(self) -> None:
        while True:
            line = self.lines.get()
            if line is None:
                return
            data = line.encode()
            self.writing_since = start = time.monotonic()
            try:
                while data and not self.broken:
                    data = data[os.write(self.fd, data):]
            except OSError:  # llem is gone (EPIPE): the run goes on, its files are what counts
                self.broken = True
            finally:
                self.writing_since = None
            waited = time.monotonic() - start
            if waited > BLOCKED_NOTE_S:
                self.blocked_s += waited

    def pending_blocked_s(self) -> float:
        since = self.writing_since
        ongoing = time.monotonic() - since if since is not None else 0.0
        return self.blocked_s + (ongoing if ongoing > BLOCKED_NOTE_S else 0.0)


_channel: _Channel | None = None


def open_channel() -> None:
    """In the harness process: progress lines go through the writer thread; fd 1 becomes the stderr log."""
    global _channel
    if _channel is not None:
        return
    try:
        sys.stdout.flush()
        fd, saved = os.dup(1), os.dup(1)  # dup() is not inherited: servers and engines never hold the pipe
        os.dup2(2, 1)                     # prints (libraries, engines) go to the log, never to the pipe
    except OSError:  # no usable stdout or stderr: events are written directly (and fail there, reported)
        return
    _channel = _Channel(fd, saved)


def close_channel() -> None:
    """Write every queued line, then close the pipe (waits for llem to read: outside any window)."""
    global _channel
    channel, _channel = _channel, None
    if channel is None:
        return
    channel.lines.put(None)
    channel.thread.join()
    sys.stdout.flush()
    os.dup2(channel.saved_stdout_fd, 1)  # as it was (a harness run in-process: a test's own stdout)
    for fd in (channel.fd, channel.saved_stdout_fd):
        try:
            os.close(fd)
        except OSError:
            pass


def blocked_note() -> str | None:
    """A line for the result when llem did not drain the progress pipe for a while (else None)."""
    channel = _channel
    waited = channel.pending_blocked_s() if channel is not None else 0.0
    if waited <= 0.0:
        return None
    return (f"llem did not read the harness's progress for {waited:.1f} s (stopped or blocked?): the harness went "
            "on without waiting for it; the measured window was not held up")


def emit(event: str, **fields) -> None:
    """One progress event per stdout line (the host's progress display and silence detector)."""
    line = encode_event(event, **fields) + "\n"
    if _channel is not None:
        _channel.lines.put(line)
        return
    sys.stdout.write(line)
    sys.stdout.flush()


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class Stage:
    """Tracks the run's current lifecycle stage so error.json can say where the run failed."""

    name = "starting"

    @classmethod
    def enter(cls, name: str, **fields) -> None:
        cls.name = name
        log.info("stage %s %s", name, fields or "")
        emit("stage", stage=name, **fields)
