"""LocalRunner: the harness as a subprocess in its own process group.

The group is killed on timeout or interrupt, so engine worker processes (vLLM spawns some)
die with it. The same run directory and command serve the Docker runner. By default each
harness is forked from a pre-imported worker started once per study and engine (local_worker.py:
the imports are paid once, each experiment still gets a fresh process); when the worker cannot
be used the run starts as a fresh interpreter and its runner.log and `harness_start` say why.
A worker found dead before a run (the OOM killer, a stray kill) is replaced, at most twice per
study and engine, and that run's runner.log says so.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from . import oom_evidence
from .base import ExitInfo, LinePump, RunRequest, check_timeouts
from .local_orphans import marker_env
from ..domain.run_spec import FORKED_START, FRESH_START, HARNESS_START_ENV
from .local_worker import IMPORT_TIMEOUT_PREFIX, READY_TIMEOUT_S, PreimportedWorker, worker_enabled
from .signals import stop_requested, stop_signal

KILL_GRACE_S = 5.0
RUNNER_LOG_FILE = "runner.log"  # stdout (progress lines) and stderr of the harness process


WORKER_RESTARTS = 2  # per engine and study: a worker that keeps dying is not worth its imports


class LocalRunner:
    name = "local"

    def __init__(self, python: str | None = None, env: dict[str, str] | None = None, worker: bool | None = None):
        self.python = python or sys.executable
        self.extra_env = env or {}
        self.use_worker = worker_enabled() if worker is None else worker
        self._workers: dict[str, PreimportedWorker | str] = {}  # engine -> its worker, or why it has none
        self._restarts: dict[str, int] = {}                     # engine -> workers started after one died
        self._workers_lock = threading.Lock()

    def preflight(self, configs: list) -> None:
        """Nothing to check: what a crashed llem left running is stopped by the study loop at every
        start, whatever the runner (runners/watchdog.py: stop_leftovers). The pre-imported worker is
        started by the first run, not here: pre-flight comes before the device locks, and its
        imports must not load a device another study is measuring."""

    def command(self, run_dir: Path) -> list[str]:
        return [self.python, "-u", "-m", "llem_harness", str(run_dir)]

    def execute(self, request: RunRequest) -> ExitInfo:
        env = self._base_env()
        if request.spec.gpu_ids:  # the run's own GPUs only: CUDA sees (and the harness measures) these
            from .gpu_presence import cuda_visible_devices

            env["CUDA_VISIBLE_DEVICES"], order = cuda_visible_devices(request.spec.gpu_ids)
            env.update(order)
        log_path = request.run_dir / RUNNER_LOG_FILE
        stderr_log = open(log_path, "ab")
        oom_before = oom_evidence.snapshot()
        started = time.monotonic()  # the run's limits cover the pre-imported worker's start (its first import)
        proc = self._start(request, env, stderr_log)
        if isinstance(proc, ExitInfo):  # the worker's start alone outlasted the run's limit
            _close_quietly(stderr_log)
            return proc
        pump = LinePump(proc.stdout, log_path, request.on_event)
        try:
            while proc.poll() is None and not getattr(proc, "lost", None):
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
        info = _exit_info(proc.returncode, oom_before, pump)
        if getattr(proc, "lost", None):
            info.detail = proc.lost
        return info

    def _base_env(self) -> dict[str, str]:
        return {**os.environ, **self.extra_env, **marker_env(), "PYTHONUNBUFFERED": "1"}

    def _start(self, request: RunRequest, env: dict[str, str], stderr_log):
        """The harness process: forked from the engine's pre-imported worker, else a fresh one."""
        why_fresh = "the pre-imported worker is off (LLEM_LOCAL_WORKER=0)" if not self.use_worker else None
        if why_fresh is None:
            limit_s, limit_name = worker_start_limit(request)
            try:
                worker, replaced = self._worker(_worker_key(request.spec.config), request.spec.config.model, limit_s)
            except KeyboardInterrupt:  # no harness yet to record the stop: record it here
                _stopped_before_start(request.run_dir)
                raise
            if replaced:
                _log_line(stderr_log, replaced)
            if isinstance(worker, str) and worker.startswith(IMPORT_TIMEOUT_PREFIX) and limit_name:
                _log_line(stderr_log, worker)
                return ExitInfo(exit_code=None, timed_out=True,
                                timeout_reason=f"{limit_name}: the pre-imported worker was still importing the engine "
                                               f"and the first run's model after {limit_s:.0f} s (a model path that "
                                               "blocks, e.g. a stalled network file system?)")
            if isinstance(worker, str):
                why_fresh = worker
            else:
                read_fd, write_fd = os.pipe()
                try:
                    proc = worker.fork(self.command(request.run_dir), request.run_dir, env, write_fd,
                                       stderr_log.fileno())
                finally:
                    os.close(write_fd)
                if not isinstance(proc, str):
                    proc.stdout = open(read_fd, "r", buffering=1)
                    _log_line(stderr_log, f"harness pid {proc.pid} {FORKED_START} (pid {worker.pid}, which "
                                          f"imported the engine in {worker.import_s} s)")
                    return proc
                os.close(read_fd)
                why_fresh = proc
        _log_line(stderr_log, f"harness started as a fresh process: {why_fresh}")
        env[HARNESS_START_ENV] = FRESH_START + (f": {why_fresh}" if self.use_worker else "")
        return subprocess.Popen(self.command(request.run_dir), stdout=subprocess.PIPE, stderr=stderr_log,
                                stdin=subprocess.DEVNULL, text=True, bufsize=1, env=env,
                                start_new_session=True)

    def _worker(self, engine: str, model: str,
                limit_s: float = READY_TIMEOUT_S) -> tuple[PreimportedWorker | str, str | None]:
        """The engine's worker (started and imported on first use), or why there is none; and, when
        a worker that died (OOM killer, a stray kill) was replaced for this run, a line saying so.
        A worker is replaced at most WORKER_RESTARTS times per study; later runs then start fresh."""
        replaced = None
        with self._workers_lock:
            worker = self._workers.get(engine)
            if isinstance(worker, PreimportedWorker) and not worker.alive():
                worker.close()
                died = f"the pre-imported worker (pid {worker.pid}) exited (code {worker.proc.returncode})"
                if self._restarts.get(engine, 0) < WORKER_RESTARTS:
                    self._restarts[engine] = self._restarts.get(engine, 0) + 1
                    worker, replaced = None, f"{died}; starting another (restart {self._restarts[engine]})"
                else:
                    worker = self._workers[engine] = f"{died} after {WORKER_RESTARTS} restarts"
            if worker is None:
                try:
                    worker = PreimportedWorker(self.python, engine, self._base_env(), model)
                except OSError as exc:
                    worker = f"the pre-imported worker could not start ({exc})"
                else:
                    why_not = worker.wait_ready(limit_s)
                    if why_not is not None:
                        worker.close()
                        worker = why_not
                self._workers[engine] = worker
            return worker, replaced

    def close(self) -> None:
        with self._workers_lock:
            for worker in self._workers.values():
                if isinstance(worker, PreimportedWorker):
                    worker.close()
            self._workers.clear()


def worker_start_limit(request: RunRequest) -> tuple[float, str | None]:
    """How long the worker's first import may take for this run, and which limit that is (None: the worker's
    own READY_TIMEOUT_S, shorter than the run's limits). Output-silent while it imports: the silence limit
    applies too."""
    limits = [(request.timeout_s, "wall-clock timeout"), (request.silence_timeout_s, "silence timeout")]
    limit_s, name = min(((s, n) for s, n in limits if s is not None), default=(READY_TIMEOUT_S, None))
    return (limit_s, name) if limit_s < READY_TIMEOUT_S else (READY_TIMEOUT_S, None)


def _stopped_before_start(run_dir: Path) -> None:
    """error.json for a run stopped while its engine's worker was still importing (first run)."""
    from ..domain import ERROR_FILE, HarnessError
    from ..domain.io import write_json_atomic

    error = HarnessError(type="Interrupted", stage="starting",
                         message=f"stopped by {stop_signal()} before the harness started (the pre-imported "
                                 "worker was importing the engine)")
    try:
        write_json_atomic(run_dir / ERROR_FILE, error)
    except OSError:
        pass


def _worker_key(config) -> str:
    """A serving run's harness imports no engine (the server process does): one worker for serving."""
    return "serving" if config.mode == "serving" else config.engine


def _log_line(handle, text: str) -> None:
    """A line of llem's own in runner.log (`llem: ...`), among the harness's output."""
    try:
        handle.write(f"llem: {text}\n".encode())
        handle.flush()
    except OSError:
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
