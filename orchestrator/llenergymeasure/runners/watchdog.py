"""A small process per `llem run` that cleans up the moment llem dies, however it dies.

Why: after `kill -9` of llem nothing of llem runs its `finally` blocks — its harness process
group (own session), its container and the token file it mounted would live on, measuring
alongside the next study and leaving a secret on disk. The watchdog holds the read end of a pipe
whose write end only llem holds; the kernel closes it when llem exits for any reason, and the
watchdog then kills the harness processes marked with llem's pid, removes its containers and
its secrets directory, and exits. It runs in its own session (Ctrl-C in the terminal does not
reach it) and costs one idle Python process. At the next start `stop_leftovers` does the same
for anything a watchdog could not (killed along with its llem, a reboot of the daemon).

    python -m llenergymeasure.runners.watchdog LLEM_PID
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SECRETS_PREFIX = "llem-secrets-"
_pipe_w: int | None = None


def secrets_root() -> Path:
    return Path(tempfile.gettempdir())


def secrets_prefix(pid: int | None = None) -> str:
    """Secrets directories carry their llem's pid, so a later start knows whose they were."""
    return f"{SECRETS_PREFIX}{os.getpid() if pid is None else pid}-"


def start() -> None:
    """Start this process's watchdog once (later calls do nothing)."""
    global _pipe_w
    if _pipe_w is not None:
        return
    read_end, write_end = os.pipe()  # not inheritable: harness processes never hold the write end
    try:
        subprocess.Popen([sys.executable, "-m", "llenergymeasure.runners.watchdog", str(os.getpid())],
                         stdin=read_end, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True, close_fds=True)
    except OSError:
        os.close(write_end)
        return
    finally:
        os.close(read_end)
    _pipe_w = write_end


def _remove_secrets() -> list[str]:
    """Secrets directories whose llem is dead: only real directories of this user, never through a link.

    /tmp is shared: another user can make a directory of the same name (or a link of it) for
    root's llem to remove. Only a directory owned by this uid, made owner-only (as `mkdtemp` makes
    it), whose pid is not alive is removed; everything else is left where it is."""
    import shutil
    import stat

    from .local_orphans import pid_alive

    removed = []
    for path in secrets_root().glob(f"{SECRETS_PREFIX}*"):
        pid = path.name.removeprefix(SECRETS_PREFIX).split("-", 1)[0]
        try:
            info = path.lstat()
        except OSError:
            continue
        ours = stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077
        if ours and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)  # fd-based on Linux: links inside are removed, never followed
            removed.append(f"secrets directory {path}")
    return removed


def _docker_orphans() -> list[str]:
    """Containers of dead llem processes on this host, when a Docker daemon is there to ask."""
    if not (os.environ.get("DOCKER_HOST") or Path("/var/run/docker.sock").exists()):
        return []
    try:
        from .docker_support import cleanup_orphans, docker_client

        client = docker_client(timeout_s=10)
    except Exception:  # noqa: BLE001 — no SDK, no daemon: nothing of ours can be running there
        return []
    try:
        return [f"container {name}" for name in cleanup_orphans(client)]
    except Exception:  # noqa: BLE001
        return []
    finally:
        client.close()


def stop_leftovers(docker: bool = True) -> list[str]:
    """Stop what dead llem processes left on this host: harness process groups, containers, secrets.

    Called at every start, whatever the runner: the devices about to be measured must be idle."""
    from .local_orphans import kill_orphans

    return kill_orphans() + (_docker_orphans() if docker else []) + _remove_secrets()


def main(argv: list[str]) -> int:
    llem_pid = int(argv[0])
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    while sys.stdin.buffer.read(4096):  # blocks until llem's end of the pipe closes
        pass
    while os.getppid() == llem_pid:  # an exiting llem closes its files before it is gone
        time.sleep(0.05)
    for delay_s in (0.0, 2.0):  # a second sweep catches a container whose start was in flight
        time.sleep(delay_s)
        stop_leftovers()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
