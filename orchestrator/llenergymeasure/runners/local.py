"""LocalRunner: the harness as a subprocess in its own process group.

The group is killed on timeout or interrupt, so engine worker processes (vLLM spawns some)
die with it. The same run directory and command serve the Docker runner.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import oom_evidence
from .base import ExitInfo, LinePump, RunRequest, check_timeouts
from .local_orphans import marker_env
from .signals import stop_requested

KILL_GRACE_S = 5.0
RUNNER_LOG_FILE = "runner.log"  # stdout (progress lines) and stderr of the harness process


class LocalRunner:
    name = "local"

    def __init__(self, python: str | None = None, env: dict[str, str] | None = None):
        self.python = python or sys.executable
        self.extra_env = env or {}

    def preflight(self, configs: list) -> None:
        """Nothing to check: what a crashed llem left running is stopped by the study loop at every
        start, whatever the runner (runners/watchdog.py: stop_leftovers)."""

    def command(self, run_dir: Path) -> list[str]:
        return [self.python, "-u", "-m", "llem_harness", str(run_dir)]

    def execute(self, request: RunRequest) -> ExitInfo:
        env = {**os.environ, **self.extra_env, **marker_env(), "PYTHONUNBUFFERED": "1"}
        if request.spec.gpu_ids:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(request.spec.gpu_ids)
        log_path = request.run_dir / RUNNER_LOG_FILE
        stderr_log = open(log_path, "ab")
        oom_before = oom_evidence.snapshot()
        proc = subprocess.Popen(self.command(request.run_dir), stdout=subprocess.PIPE, stderr=stderr_log,
                                stdin=subprocess.DEVNULL, text=True, bufsize=1, env=env,
                                start_new_session=True)
        pump = LinePump(proc.stdout, log_path, request.on_event)
        started = time.monotonic()
        try:
            while proc.poll() is None:
                if stop_requested.is_set():  # the study is stopping (a worker thread of a parallel study)
                    raise KeyboardInterrupt
                reason = check_timeouts(started, pump, request.timeout_s, request.silence_timeout_s)
                if reason:
                    _kill_group(proc)
                    return ExitInfo(exit_code=proc.returncode, timed_out=True, timeout_reason=reason)
                time.sleep(0.05)
        except KeyboardInterrupt:
            _interrupt_group(proc)
            raise
        except BaseException:
            _kill_group(proc)
            raise
        finally:
            pump.join()
            _close_quietly(stderr_log)
        return _exit_info(proc.returncode, oom_before, pump)

    def close(self) -> None:
        pass


def _exit_info(code: int | None, oom_before: dict[str, int], pump: LinePump) -> ExitInfo:
    """How the harness ended; a SIGKILL from outside counts as an OOM kill only on the kernel's word."""
    info = ExitInfo(exit_code=code, log_error=str(pump.log_error) if pump.log_error else None)
    if code == -9:
        after = oom_evidence.snapshot()
        evidence = oom_evidence.oom_evidence(oom_before, after)
        info.oom_killed = evidence is not None
        info.detail = (f"killed by the kernel's OOM killer: {evidence}; reduce batch size or model size"
                       if evidence else f"OOM counters unchanged: {', '.join(after)}" if after else None)
    return info


def _close_quietly(handle) -> None:
    try:
        handle.close()
    except OSError:  # disk full: what could not be flushed is lost, the run's outcome is not
        pass


def _interrupt_group(proc: subprocess.Popen) -> None:
    """First Ctrl-C: SIGINT to the harness group (it records error.json and exits), a grace to do
    so, then SIGKILL. A second Ctrl-C during the grace kills the group at once."""
    try:
        pgid = os.getpgid(proc.pid)
        os.killpg(pgid, signal.SIGINT)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
    except KeyboardInterrupt:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        raise


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM the process group, then SIGKILL after a short grace."""
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        return
    for sig, wait_s in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue
