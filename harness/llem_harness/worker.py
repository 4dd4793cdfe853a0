"""A pre-imported worker: imports the engine once, then forks a fresh harness per experiment.

Why: every local run used to spend seconds importing torch and transformers again before loading
a model (most of a small study's wall time). This process is started once per study and engine
by the local runner (runners/local_worker.py); it imports the engine's and the harness's modules,
initialises no device (CUDA must never be initialised before a fork: checked before every fork),
and on each request forks a child that becomes exactly what `python -m llem_harness RUN_DIR`
would be: its own session (setsid), the runner's pipes as stdin/stdout/stderr, the run's
environment, the harness's signal handling and exit codes.

Protocol (Unix SOCK_SEQPACKET, one JSON message per packet):
- control socket (fd given on the command line): the worker sends {"ready": ...} or {"error": ...}
  once; then each request {"run_dir", "env", "cwd"} arrives with three fds: a private channel,
  the stdout pipe's write end, the stderr log.
- on the channel the worker answers {"pid": N} (or {"refused": reason}) and later {"exit": code}
  (code as subprocess.Popen.returncode: negative for a signal).
- when the control socket reaches end of file (llem exited, however: `kill -9` included) the
  worker stops its children's process groups (SIGTERM, a grace, SIGKILL) and exits.

    python -u -m llem_harness.worker ENGINE CONTROL_FD MODEL PADDING

PADDING (spaces) reserves room in the worker's command line for each child's (`ps` shows a forked
harness as `python -u -m llem_harness RUN_DIR`, like a fresh one).
"""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
import threading
import time

PARENT_ENV = "LLEM_HARNESS_PARENT_PID"  # lifecycle.stop_with_parent: the parent to die with
STOP_GRACE_S = 5.0


def os_threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def fork_refusal(native_threads: int) -> str | None:
    """Why forking this process now would be unsafe, or None: CUDA initialised, or threads started
    since the imports (a fork copies only the calling thread: a lock another one held stays held).
    The threads the imports themselves start (a BLAS pool: torch and OpenBLAS re-create their pools
    in a forked child) are the `native_threads` counted when the worker became ready."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        return "CUDA is initialised in the pre-imported worker"
    if threading.active_count() > 1:
        return f"the pre-imported worker runs {threading.active_count()} Python threads"
    if os_threads() > native_threads:
        return f"the pre-imported worker started threads after its imports ({os_threads()} > {native_threads})"
    return None


def _argument_area() -> tuple[int, int] | None:
    """Where this process's command line lives in its memory (/proc/PID/stat fields 48-49)."""
    try:
        fields = open("/proc/self/stat").read().rpartition(")")[2].split()
        return int(fields[45]), int(fields[46])
    except (OSError, IndexError, ValueError):
        return None


def command_line_refusal(argv: list[str]) -> str | None:
    area = _argument_area()
    needed = len(b"\0".join(a.encode() for a in argv)) + 1
    if area is None or area[1] - area[0] < needed:
        return "the pre-imported worker has no room to show the harness's command line"
    return None


def _show_command_line(argv: list[str]) -> None:
    """Rewrite this process's command line in place (what `ps` and `pgrep -f` read) to the one a fresh
    harness has: tools that find a run's harness by its command line find a forked one alike."""
    import ctypes

    start, end = _argument_area()
    text = b"\0".join(a.encode() for a in argv) + b"\0"
    ctypes.memmove(start, text, len(text))
    ctypes.memset(start + len(text), 0, end - start - len(text))


def _send(sock: socket.socket, message: dict) -> None:
    try:
        sock.send(json.dumps(message).encode())
    except OSError:  # the runner gave up on this run: nothing to tell
        pass


def _child(request: dict, fds: list[int], closing: list, started_w: int) -> None:
    """In the forked child: become the harness process of one run. Never returns."""
    code = 1
    try:
        os.setsid()
        os.close(started_w)  # now its own group: the runner may signal it by group from here on
        channel_fd, out_fd, err_fd = fds
        null_fd = os.open(os.devnull, os.O_RDONLY)
        for src, dst in ((null_fd, 0), (out_fd, 1), (err_fd, 2)):
            os.dup2(src, dst)
        for fd in {null_fd, channel_fd, out_fd, err_fd} - {0, 1, 2}:
            os.close(fd)
        for item in closing:  # the worker's other sockets and pidfds are not this run's
            item.close() if isinstance(item, socket.socket) else os.close(item)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL if sig != signal.SIGPIPE else signal.SIG_IGN)
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ[PARENT_ENV] = str(os.getppid())
        os.chdir(request["cwd"])
        _show_command_line(request["argv"])
        sys.argv = [sys.argv[0], request["run_dir"]]
        from .__main__ import main_and_exit

        main_and_exit([request["run_dir"]])  # os._exit inside
    except BaseException:  # noqa: BLE001 - report on the run's stderr; the runner reads error.json or the code
        import traceback

        traceback.print_exc()
    os._exit(code)


class Worker:
    def __init__(self, control: socket.socket, native_threads: int):
        self.control, self.native_threads = control, native_threads
        self.children: dict[int, tuple[socket.socket, int | None]] = {}  # pid -> (channel, pidfd)

    def handle(self, message: bytes, fds: list[int]) -> None:
        request = json.loads(message)
        if len(fds) != 3:
            for fd in fds:
                os.close(fd)
            return
        channel = socket.socket(fileno=fds[0])
        refusal = fork_refusal(self.native_threads) or command_line_refusal(request["argv"])
        if refusal is not None:
            _send(channel, {"refused": refusal})
            channel.close()
            for fd in fds[1:]:
                os.close(fd)
            return
        sys.stdout.flush()
        sys.stderr.flush()
        started_r, started_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(started_r)
            _child(request, fds, [self.control] + [item for pair in self.children.values() for item in pair
                                                   if item is not None], started_w)
        os.close(started_w)
        os.read(started_r, 1)  # end of file once the child has its own session (or has died)
        os.close(started_r)
        for fd in fds[1:]:
            os.close(fd)
        pidfd = None
        if hasattr(os, "pidfd_open"):
            try:
                pidfd = os.pidfd_open(pid)
            except OSError:
                pidfd = None
        self.children[pid] = (channel, pidfd)
        _send(channel, {"pid": pid})

    def reap(self) -> None:
        for pid, (channel, pidfd) in list(self.children.items()):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, None
            if done == 0:
                continue
            code = None if status is None else os.waitstatus_to_exitcode(status)
            _send(channel, {"exit": code})
            channel.close()
            if pidfd is not None:
                os.close(pidfd)
            del self.children[pid]

    def stop_children(self) -> None:
        """llem is gone: stop every child's group the way the runner would (SIGTERM, grace, SIGKILL)."""
        for sig, grace_s in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 2.0)):
            for pid in list(self.children):
                try:
                    os.killpg(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
            deadline = time.monotonic() + grace_s
            while self.children and time.monotonic() < deadline:
                self.reap()
                time.sleep(0.05)
            if not self.children:
                return

    def serve(self) -> None:
        while True:
            pidfds = [pidfd for _, pidfd in self.children.values() if pidfd is not None]
            polling = len(pidfds) < len(self.children)
            readable, _, _ = select.select([self.control] + pidfds, [], [], 0.05 if polling else None)
            if self.control in readable:
                try:
                    message, fds, _, _ = socket.recv_fds(self.control, 65536, 3)
                except OSError:
                    message, fds = b"", []
                if not message:
                    self.stop_children()
                    return
                self.handle(message, fds)
            self.reap()


def main(argv: list[str]) -> int:
    engine, control_fd, model = argv[0], int(argv[1]), argv[2]
    control = socket.socket(fileno=control_fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # its own session already; llem's Ctrl-C is not for it
    start = time.monotonic()
    try:
        from .startup import HARNESS_MODULES, import_architecture, import_modules

        modules = import_modules(engine)
        import_architecture(engine, model)  # the first run's model: later models may import their own
        for name in HARNESS_MODULES:
            __import__(name)
        from . import __main__  # noqa: F401 - the child's entry point
    except BaseException as exc:  # noqa: BLE001 - the runner falls back to fresh processes, saying why
        _send(control, {"error": f"{type(exc).__name__}: {exc}"[:500]})
        return 1
    native_threads = os_threads()
    _send(control, {"ready": True, "pid": os.getpid(), "import_s": round(time.monotonic() - start, 3),
                    "modules": modules, "refusal": fork_refusal(native_threads)})
    Worker(control, native_threads).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
