"""Orphan detection on real processes: a harness whose llem is gone is found, even when the kernel
has given llem's pid to another process since (the start time in the marker tells them apart)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from llenergymeasure.runners.local_orphans import HOST_ENV, PID_ENV, START_ENV, find_orphans, marker_env, start_ticks

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _sleeper(marker: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                            env={**os.environ, **marker}, start_new_session=True)


@pytest.mark.parametrize("start, orphan", [("own", False), ("other", True), ("", False)])
def test_the_owner_is_the_pid_and_its_start_time(start, orphan):
    """An alive pid owns the harness only if it started when the marker says (no start time: old marker)."""
    own = start_ticks(os.getpid())
    assert own and own.isdigit()
    started = {"own": own, "other": str(int(own) + 1), "": ""}[start]
    proc = _sleeper({PID_ENV: str(os.getpid()), HOST_ENV: socket.gethostname(), START_ENV: started})
    try:
        found = {pid for pid, _ in find_orphans()}
        assert (proc.pid in found) is orphan
    finally:
        proc.kill()
        proc.wait()


def test_a_dead_owner_makes_an_orphan_and_the_marker_names_this_process():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    proc = _sleeper({PID_ENV: str(gone.pid), HOST_ENV: socket.gethostname(), START_ENV: "1"})
    try:
        assert proc.pid in {pid for pid, _ in find_orphans()}
    finally:
        proc.kill()
        proc.wait()
    marker = marker_env()
    assert marker[PID_ENV] == str(os.getpid()) and marker[START_ENV] == start_ticks(os.getpid())


def _unshare_pid_available() -> bool:
    try:
        return subprocess.run(["unshare", "-p", "-f", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not _unshare_pid_available(), reason="needs `unshare -p` (root or user namespaces)")
@pytest.mark.parametrize("recorded_ns", [False, True], ids=["old-marker", "marker-with-namespace"])
def test_a_harness_in_another_pid_namespace_is_never_an_orphan_here(recorded_ns):
    """A study under `unshare -p` (same hostname): its llem's pid names nothing here, its harness is not ours to stop."""
    import time

    PIDNS_ENV = "LLEM_ORCHESTRATOR_PIDNS"

    def pid_namespace(pid="self"):
        return os.readlink(f"/proc/{pid}/ns/pid")

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that runs nothing in this namespace (in the other one, it may be the live llem)
    marker = {PID_ENV: str(gone.pid), HOST_ENV: socket.gethostname(), START_ENV: "1"}
    if recorded_ns:
        marker[PIDNS_ENV] = "pid:[1]"  # what the other namespace's llem recorded: not ours
    env_args = [f"{k}={v}" for k, v in marker.items()]
    # unshare itself stays here, without the marker; the harness stand-in runs in the new namespace
    outer = subprocess.Popen(["unshare", "-p", "-f", "env", *env_args, sys.executable, "-c",
                              "import time; time.sleep(60)"], start_new_session=True)
    try:
        inner = None
        deadline = time.monotonic() + 20
        while inner is None and time.monotonic() < deadline:
            for entry in os.listdir("/proc"):
                if entry.isdigit() and int(entry) != outer.pid:
                    try:
                        environ = open(f"/proc/{entry}/environ", "rb").read()
                    except OSError:
                        continue
                    if f"{PID_ENV}={gone.pid}".encode() in environ and b"python" in open(
                            f"/proc/{entry}/cmdline", "rb").read():
                        inner = int(entry)
            time.sleep(0.05)
        assert inner is not None and pid_namespace(inner) != pid_namespace()
        assert inner not in {pid for pid, _ in find_orphans()}
    finally:
        os.killpg(outer.pid, 9)
        outer.wait()
    assert marker_env()[PIDNS_ENV] == pid_namespace()
