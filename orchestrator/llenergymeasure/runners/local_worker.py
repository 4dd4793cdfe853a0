"""The local runner's pre-imported worker, host side: one per study and engine, a forked harness per run.

Why: a fresh harness process imports torch and transformers again for every run — seconds per
run on an idle machine, tens of seconds on a loaded one, most of a small study's wall time. The
worker (`python -m llem_harness.worker ENGINE FD`, harness side) imports them once, initialises
no device, and forks a child per experiment: still one fresh process per experiment, in its own
session, with this runner's pipes as its stdio. `ForkedHarness` gives the runner the same handle
as `subprocess.Popen` (pid, poll, wait, returncode, stdout), so timeouts, the group kill, the
line pump and the OOM evidence work unchanged.

It dies with llem however llem dies: the worker exits (stopping its children's groups) when its
control socket — held only by llem — reaches end of file; it carries llem's orphan marker, so
the watchdog and the next start's sweep kill it too (runners/local_orphans.py). The worker is
not used, and the run starts as a fresh process saying why, when it cannot start or import, when
it finds CUDA initialised or threads running before a fork, when the run's environment differs
from the worker's, or when `LLEM_LOCAL_WORKER=0`.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time

from ..domain.run_spec import FORKED_START, HARNESS_START_ENV
from .local_orphans import pid_alive
from .signals import stop_requested

WORKER_ENV = "LLEM_LOCAL_WORKER"  # "0": a fresh process per run, no pre-imported worker
PER_RUN_ENV = ("CUDA_VISIBLE_DEVICES", HARNESS_START_ENV)  # may differ between runs: read after the fork
READY_TIMEOUT_S = 600.0  # at most; a run's shorter timeout_s / silence_timeout_s bound it (LocalRunner)
IMPORT_TIMEOUT_PREFIX = "the pre-imported worker did not finish importing"
REPLY_TIMEOUT_S = 30.0
MAX_MESSAGE = 1 << 20
COMMAND_LINE_ROOM = 4096  # bytes the worker keeps for a child's command line (PATH_MAX)


def worker_enabled() -> bool:
    return os.environ.get(WORKER_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def _differing(env: dict[str, str], worker_env: dict[str, str]) -> list[str]:
    names = (set(env) | set(worker_env)) - set(PER_RUN_ENV)
    return sorted(name for name in names if env.get(name) != worker_env.get(name))


class ForkedHarness:
    """A harness the worker forked, handled like `subprocess.Popen` (returncode negative for a signal).

    `lost` is set when the worker died before reporting the exit status (the harness is gone too)."""

    def __init__(self, channel: socket.socket, pid: int, stdout, args: list[str]):
        self.pid, self.stdout, self.args = pid, stdout, args
        self.returncode: int | None = None
        self.lost: str | None = None
        self._channel = channel
        channel.setblocking(False)

    def poll(self) -> int | None:
        if self.returncode is not None or self.lost:
            return self.returncode
        try:
            data = self._channel.recv(MAX_MESSAGE)
        except BlockingIOError:
            return None
        except OSError:
            data = b""
        if data:
            self.returncode = json.loads(data).get("exit")
            self._channel.close()
        elif not pid_alive(self.pid):  # the worker died; its child (sent SIGTERM by the kernel) is gone too
            self.lost = "the pre-imported worker died before reporting the harness's exit status"
            self._channel.close()
        return self.returncode

    def running(self) -> bool:
        return self.poll() is None and not self.lost

    def wait(self, timeout: float | None = None) -> int | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.running():
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(0.02)
        return self.returncode


class PreimportedWorker:
    """One worker process for one engine; `fork` is safe from several threads (parallel studies)."""

    def __init__(self, python: str, engine: str, env: dict[str, str], model: str = ""):
        self.env = dict(env)
        self.control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._stderr = tempfile.TemporaryFile()
        self._lock = threading.Lock()
        self.args = [python, "-u", "-m", "llem_harness.worker", engine, str(theirs.fileno()), model,
                     " " * COMMAND_LINE_ROOM]
        try:
            self.proc = subprocess.Popen(self.args, pass_fds=(theirs.fileno(),), env=self.env,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._stderr,
                                         start_new_session=True)
        finally:
            theirs.close()
        self.pid = self.proc.pid
        self.import_s: float | None = None
        self.ready = False  # imports done; until then it has no child and is stopped at once

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> str | None:
        """Block until the worker has imported its modules; None when usable, else why not.
        Interruptible: a KeyboardInterrupt or a stopping study stops the worker and re-raises."""
        deadline = time.monotonic() + timeout_s
        self.control.settimeout(0.2)
        try:
            while True:
                if stop_requested.is_set():
                    raise KeyboardInterrupt
                try:
                    data = self.control.recv(MAX_MESSAGE)
                    break
                except TimeoutError:
                    if time.monotonic() > deadline:
                        return f"{IMPORT_TIMEOUT_PREFIX} within {timeout_s:.0f} s"
        except BaseException:
            self.close()
            raise
        if not data:
            return f"the pre-imported worker exited while importing ({self._stderr_tail() or 'no message'})"
        message = json.loads(data)
        if "error" in message:
            return f"the pre-imported worker could not import the engine: {message['error']}"
        self.import_s = message.get("import_s")
        self.ready = True
        self.control.settimeout(REPLY_TIMEOUT_S)  # a worker that stops reading makes a fork fail, not hang
        return message.get("refusal")

    def fork(self, argv: list[str], run_dir, env: dict[str, str], stdout_w: int,
             stderr_fd: int) -> ForkedHarness | str:
        """Ask for a harness child for `run_dir`; its handle, or why the worker would not fork."""
        differing = _differing(env, self.env)
        if differing:
            return f"the run's environment differs from the pre-imported worker's ({', '.join(differing[:5])})"
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        request = json.dumps({"run_dir": str(run_dir), "argv": argv, "env": {**env, HARNESS_START_ENV: FORKED_START},
                              "cwd": os.getcwd()}).encode()
        try:
            with self._lock:
                socket.send_fds(self.control, [request], [theirs.fileno(), stdout_w, stderr_fd])
        except OSError as exc:
            mine.close()
            return f"the pre-imported worker is not reachable ({exc.strerror or exc})"
        finally:
            theirs.close()
        mine.settimeout(REPLY_TIMEOUT_S)
        try:
            data = mine.recv(MAX_MESSAGE)
        except OSError as exc:
            data = b""
            why = f"no answer from the pre-imported worker ({exc})"
        else:
            why = "the pre-imported worker exited"
        message = json.loads(data) if data else {"refused": why}
        if "pid" not in message:
            mine.close()
            return message.get("refused") or why
        return ForkedHarness(mine, int(message["pid"]), None, argv)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        """End of file on the control socket: the worker stops its children and exits."""
        try:
            self.control.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10.0 if self.ready else 0.0)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()
        self._stderr.close()

    def _stderr_tail(self) -> str:
        try:
            self._stderr.seek(0)
            lines = self._stderr.read().decode(errors="replace").strip().splitlines()
        except (OSError, ValueError):
            return ""
        return lines[-1][:300] if lines else ""
