"""Harness processes left running by a local-runner orchestrator that died (e.g. `kill -9`).

The local runner starts each harness in its own session (so a timeout can kill the whole
group) — which also means the harness outlives an orchestrator killed by SIGKILL and would go on
loading a GPU that the next study measures. Every harness carries LLEM_ORCHESTRATOR_PID and
LLEM_ORCHESTRATOR_HOST in its environment; at the next start, harness groups whose orchestrator
pid no longer runs on this host are killed, and the study says so. Linux /proc only.
The marker also holds the orchestrator's start time (LLEM_ORCHESTRATOR_START, clock ticks since
boot): a pid the kernel has since given to another process does not keep an orphan alive.

Pids mean something only inside one pid namespace: a study running under `unshare -p`, in a container
sharing the host's network (and so its hostname) or under Apptainer has its own pid 1, and its llem's
pid names nothing — or someone else — here. The marker holds the orchestrator's pid namespace
(LLEM_ORCHESTRATOR_PIDNS, the `/proc/self/ns/pid` link), and a process is stopped only when both its
marker and the process itself are in this llem's namespace; a process whose namespace cannot be read
is left alone.
"""
from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

PID_ENV, HOST_ENV, START_ENV = "LLEM_ORCHESTRATOR_PID", "LLEM_ORCHESTRATOR_HOST", "LLEM_ORCHESTRATOR_START"
PIDNS_ENV = "LLEM_ORCHESTRATOR_PIDNS"


def marker_env() -> dict[str, str]:
    return {PID_ENV: str(os.getpid()), HOST_ENV: socket.gethostname(), START_ENV: start_ticks(os.getpid()) or "",
            PIDNS_ENV: pid_namespace() or ""}


def pid_namespace(pid: int | str = "self") -> str | None:
    """The pid namespace of `pid` (e.g. 'pid:[4026531836]'); None where it cannot be read."""
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def same_pid_namespace(pid: int, marker: dict[str, str], ours: str | None) -> bool:
    """`pid` and the llem its marker names are in this llem's pid namespace (else their pids mean nothing here)."""
    if ours is None:  # no namespaces to read (not Linux, or /proc hidden): one namespace as before
        return True
    recorded = marker.get(PIDNS_ENV)
    return pid_namespace(pid) == ours and (not recorded or recorded == ours)


def start_ticks(pid: int) -> str | None:
    """When `pid` started (field 22 of /proc/PID/stat, clock ticks since boot); None without /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def owner_alive(pid: int, started: str | None) -> bool:
    """The orchestrator `pid` that started at `started` still runs (not another process given its pid)."""
    if not pid_alive(pid):
        return False
    now = start_ticks(pid)
    return not started or now is None or now == started


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def pid_alive(pid: int) -> bool:
    """Running (a zombie — killed, not yet reaped by its parent — counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill(0)
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def find_orphans() -> list[tuple[int, int]]:
    """(pid, orchestrator pid) of harness processes on this host whose orchestrator is gone."""
    host, found, namespace = socket.gethostname(), [], pid_namespace()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        env = _environ(int(entry.name))
        owner = env.get(PID_ENV)
        if (owner and owner.isdigit() and env.get(HOST_ENV) == host
                and same_pid_namespace(int(entry.name), env, namespace)
                and not owner_alive(int(owner), env.get(START_ENV))):
            found.append((int(entry.name), int(owner)))
    return found


def kill_orphans() -> list[str]:
    """Kill orphaned harness process groups; a description of each, for the study's notice."""
    killed = []
    for pid, owner in find_orphans():
        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue
        killed.append(f"harness pid {pid} (its llem, pid {owner}, is gone)")
    return killed
