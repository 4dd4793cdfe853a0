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
