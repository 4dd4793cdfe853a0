"""Server lifecycle: start the engine's server as a child process, wait (bounded) until it answers,
stop it. Its stdout/stderr go to `server.log` in the run directory, which survives any failure.

A server that exits before it is ready, or is not ready within `ready_timeout_s`, raises
`ServerFailed` with the tail of its log; so does a 200 from a process other than the child
(`listener.py`: the port's listening socket must be the child's). The process entry turns that into error.json (stage
`server_starting`), a structured failure like any other.

How it is started: in its own process group (so `stop` signals the server and every worker it
spawned, nothing else) but in the harness's session, not a session of its own. The kernel's
autogroup scheduler (on by default on many distributions) gives every session its own scheduling
group with one group's share of the CPU: a server in a session of its own competes with the load
generator as a separate group, which on a busy host stalled it for ~100 ms at a time so that whole
responses arrived in one read (TPOT 0, TTFT x9). A deployed server and the engine's own benchmark
client do not run that way; `start_info` records how this one ran.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from .listener import foreign_listener

SERVER_LOG_FILE = "server.log"
LOG_TAIL_CHARS = 2000


class ServerFailed(RuntimeError):
    """The server died or never became ready."""


class ServerProcess:
    def __init__(self, argv: list[str], base_url: str, ready_path: str, run_dir: Path):
        self.argv = argv
        self.base_url = base_url
        self.ready_path = ready_path
        self.port = urlsplit(base_url).port
        self.log_path = Path(run_dir) / SERVER_LOG_FILE
        self._proc: subprocess.Popen | None = None
        self._log = None
        self.start_info: dict | None = None   # how the server was started (start_info), once started

    def start(self) -> None:
        self._log = open(self.log_path, "ab")
        try:
            # Own process group (stop() ends the server and any workers it spawned, nothing else), in
            # the harness's session: its own session would be its own autogroup (module docstring).
            self._proc = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, **own_process_group())
        except OSError as exc:
            raise ServerFailed(f"cannot start server {self.argv[0]!r}: {exc}") from exc
        self.start_info = start_info(self._proc.pid)

    def wait_ready(self, timeout_s: float, poll_s: float = 0.5) -> float:
        """Seconds until GET ready_path answered 200; raises ServerFailed on exit or timeout."""
        start = time.monotonic()
        url = self.base_url + self.ready_path
        with httpx.Client(timeout=5.0) as client:
            while True:
                code = self._proc.poll()
                if code is not None:
                    raise ServerFailed(f"server exited with code {code} before it was ready; "
                                       f"log tail ({self.log_path.name}):\n{self.log_tail()}")
                try:
                    answered = client.get(url).status_code == 200
                except httpx.HTTPError:
                    answered = False
                if answered:  # a 200 proves a server; the port's socket proves it is ours (listener.py)
                    foreign = foreign_listener(self.port, self._proc.pid)
                    if foreign is None:
                        return time.monotonic() - start
                    raise ServerFailed(f"{foreign}; log tail ({self.log_path.name}):\n{self.log_tail()}")
                if time.monotonic() - start > timeout_s:
                    raise ServerFailed(f"server not ready after {timeout_s:g} s (serving.ready_timeout_s); "
                                       f"log tail ({self.log_path.name}):\n{self.log_tail()}")
                time.sleep(poll_s)

    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self) -> str:
        if self._log is not None:
            self._log.flush()
        try:
            return self.log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
        except OSError:
            return ""

    def stop(self, grace_s: float = 10.0) -> None:
        if self._proc is not None and self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGTERM)
                self._proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait(timeout=grace_s)
            except ProcessLookupError:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None


def own_process_group() -> dict:
    """Popen arguments for a child in a process group of its own within the caller's session."""
    if sys.version_info >= (3, 11):
        return {"process_group": 0}
    return {"preexec_fn": os.setpgrp}  # Python 3.10: no process_group argument


def _autogroup(pid: int | str) -> str | None:
    """The scheduling autogroup of a process ("/autogroup-N"), None where the kernel has none.

    The kernel prints nothing for a process in the default autogroup (one whose session was never
    given its own, such as a session begun by init without setsid, as CI jobs often are): that is
    a group like any other, shared by every such process, so it is named "default" rather than None.
    """
    try:
        text = Path(f"/proc/{pid}/autogroup").read_text().split()
    except OSError:
        return None
    return text[0] if text else "default"


def start_info(pid: int) -> dict:
    """How the server runs next to the harness, read back from the kernel (not assumed)."""
    try:
        same_session = os.getsid(pid) == os.getsid(0)
        own_group = os.getpgid(pid) == pid
    except ProcessLookupError:  # already exited: wait_ready reports why
        same_session = own_group = None
    try:
        enabled = Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        enabled = None
    server_group, own = _autogroup(pid), _autogroup("self")
    return {"process_group": "own (stopped as a group)", "session": "the harness's (not a new session)",
            "same_session_as_load_generator": same_session, "own_process_group": own_group,
            "kernel_autogroup_enabled": enabled,
            "same_autogroup_as_load_generator": None if server_group is None or own is None
            else server_group == own}
