"""Real foreign CPU load for the contention tests: a spinning process that is not our descendant."""
from __future__ import annotations

import os
import subprocess
import sys


def spin_code(seconds: float) -> str:
    return f"import time\nend = time.time() + {seconds}\nwhile time.time() < end: pass\n"


def start_foreign_spinner(seconds: float) -> int:
    """A CPU-bound process that is not a descendant of this one (its launcher exits at once).

    It stops by itself after `seconds`; call `stop(pid)` to end it earlier.
    """
    code = ("import subprocess, sys; print(subprocess.Popen([sys.executable, '-c', sys.argv[1]], "
            "stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, "
            "start_new_session=True).pid)")
    launcher = subprocess.run([sys.executable, "-c", code, spin_code(seconds)], capture_output=True,
                              text=True, check=True, timeout=30)
    return int(launcher.stdout.strip())


def stop(pid: int) -> None:
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass


def cpu_s(pid: int) -> float:
    """utime + stime of one process, seconds (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
