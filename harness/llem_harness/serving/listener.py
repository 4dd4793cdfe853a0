"""Who listens on the server's port: the server llem started, and nobody else.

Why: the load generator talks to `127.0.0.1:PORT`, and any local process can listen there. An
impostor that answers `/v1/models`, the tokenize endpoint and streamed completions would be
measured as the engine (its constants in every request's usage, the run "completed"), and a
server that answers 200 is not proof that it is the one llem started. So the harness asks the
kernel: the port's listening sockets (Linux `/proc/net/tcp` and `tcp6`, state LISTEN) must all be
held by the server's process tree (its pid, its descendants, its session), found through the
socket inodes in `/proc/<pid>/fd` — and listen on the loopback interface only (anyone on the network
could otherwise add load inside the energy window). A configured `serving.port` that something already listens on
is refused before the server starts.

Only the server's own processes are read (another user's `/proc/<pid>/fd` is not readable, and
need not be): a listener none of them holds is foreign. Without `/proc/net` (not Linux) the check
cannot be made and says so; the harness then records the server as unverified.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

TCP_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
LISTEN_STATE = "0A"
CHECK_DEFINITION = ("when the server first answered and after the load: every socket listening on the port is "
                    "held by the server process llem started or its descendants (/proc/net/tcp inodes), on loopback")


def listening_inodes(port: int, proc: Path = Path("/proc")) -> set[str] | None:
    """Socket inodes listening on `port` (any local address); None when the tables cannot be read."""
    found = listening_sockets(port, proc)
    return None if found is None else set(found)


_LOOPBACK_V6 = ("00000000000000000000000001000000", "0000000000000000FFFF0000")  # ::1, ::ffff:a.b.c.d prefix


def is_loopback(address_hex: str) -> bool:
    """A /proc/net/tcp local address (hex, host byte order words) on the loopback interface."""
    if len(address_hex) == 8:  # IPv4, little-endian: 127.x.y.z ends in 7F
        return address_hex.upper().endswith("7F")
    address_hex = address_hex.upper()
    if address_hex == _LOOPBACK_V6[0]:
        return True
    return address_hex.startswith(_LOOPBACK_V6[1]) and address_hex.endswith("7F")


def listening_sockets(port: int, proc: Path = Path("/proc")) -> dict[str, str] | None:
    """Inode -> local address (hex) of every socket listening on `port`; None when the tables cannot be read."""
    found, readable = {}, False
    for table in TCP_TABLES:
        try:
            lines = (proc / Path(table).relative_to("/proc")).read_text().splitlines()[1:]
        except OSError:
            continue
        readable = True
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != LISTEN_STATE:
                continue
            address, _, local_port = fields[1].rpartition(":")
            if int(local_port, 16) == port:
                found[fields[9]] = address
    return found if readable else None


def process_tree(root: int, proc: Path = Path("/proc")) -> set[int]:
    """`root`, every descendant, and every process of the session `root` leads (the server's own)."""
    parents: dict[int, int] = {}
    members = {root}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        if int(fields[3]) == root:  # session id: started with start_new_session, the server leads one
            members.add(pid)
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in members and pid not in members:
                members.add(pid)
                grew = True
    return members


def socket_inodes(pids: set[int], proc: Path = Path("/proc")) -> set[str]:
    """Inodes of the sockets the processes `pids` hold open."""
    inodes = set()
    for pid in pids:
        try:
            names = os.listdir(proc / str(pid) / "fd")
        except OSError:
            continue
        for name in names:
            try:
                target = os.readlink(proc / str(pid) / "fd" / name)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    return inodes


def foreign_listener(port: int, server_pid: int) -> str | None:
    """Why the server answering on `port` may not be the one started as `server_pid`; None when every
    listening socket on the port is held by that server's process tree."""
    sockets = listening_sockets(port)
    if sockets is None:
        return None if not Path("/proc/net").exists() else f"cannot read the listening sockets of port {port}"
    if not sockets:
        return f"nothing listens on port {port}, yet a server answered there"
    ours = socket_inodes(process_tree(server_pid))
    foreign = set(sockets) - ours
    if foreign:
        return (f"another process listens on port {port} (socket inode {', '.join(sorted(foreign))}, not held by "
                f"the server llem started, pid {server_pid}): the server answering is not the one measured")
    exposed = sorted(inode for inode, address in sockets.items() if not is_loopback(address))
    if exposed:  # anyone on the network could add load inside the energy window
        return (f"the server listens on port {port} beyond the loopback interface (socket inode "
                f"{', '.join(exposed)}); llem serves on 127.0.0.1 only")
    return None


def port_in_use(port: int, host: str = "127.0.0.1") -> str | None:
    """What already listens on `port` (a description), or None when the server can bind it."""
    listening = listening_inodes(port)
    if listening:
        return f"{len(listening)} listening socket(s) already on port {port}"
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            return f"cannot bind {host}:{port} ({exc.strerror or exc})"
    return None


def verification_available() -> bool:
    """True where the kernel's socket tables can be read (Linux)."""
    return listening_inodes(0) is not None
