"""The one runner protocol every runner implements, and what is shared between runners.

The study loop calls `runner.execute(request)` and then `collect_outcome(...)`; it never asks
which kind of runner it holds. A runner launches `python -m llem_harness RUN_DIR` somewhere (a
local process group, a container), forwards the harness's JSON-lines progress, enforces the
wall-clock and silence timeouts, and reports how the process ended. What the run *measured*
is read only from the run directory (`result.json` / `error.json`).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Literal, Protocol

from ..domain import ERROR_FILE, HARNESS_EXIT_STORAGE, RESULT_FILE, ExperimentConfig, ExperimentResult, HarnessError, RunSpec

EventCallback = Callable[[dict], None]


@dataclass
class RunRequest:
    run_dir: Path
    spec: RunSpec
    timeout_s: float
    silence_timeout_s: float | None
    on_event: EventCallback = lambda event: None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class ExitInfo:
    """How the harness process ended, from structured state only (never parsed stderr)."""

    exit_code: int | None
    timed_out: bool = False
    timeout_reason: str | None = None
    oom_killed: bool = False  # only on the kernel's evidence (container state, cgroup/host OOM counters)
    detail: str | None = None
    log_error: str | None = None  # the run's output could not be logged (disk full)


@dataclass
class RunOutcome:
    status: Literal["completed", "failed"]
    result: ExperimentResult | None
    error_type: str | None = None
    error_message: str | None = None
    exit: ExitInfo | None = None


class Runner(Protocol):
    """Start an experiment run in its run directory, wait with timeouts, report how it ended.

    `execute` blocks. On KeyboardInterrupt it must stop what it started (process group,
    container) before re-raising, so nothing of ours outlives the orchestrator.
    """

    name: str

    def preflight(self, configs: list[ExperimentConfig]) -> None:
        """Raise PreFlightError when the engine's experiments cannot run at all (e.g. no image)."""

    def execute(self, request: RunRequest) -> ExitInfo: ...

    def close(self) -> None: ...


def load_completed(study_dir: Path, entry, study_id: str | None = None,
                   seen: dict[Path, str] | None = None) -> RunOutcome:
    """The outcome of a run a previous process completed (resume): its result.json, read-only.
    ResultMismatch when the file is not this entry's (results/load.py `read_entry_result`)."""
    from ..errors import ConfigError
    from ..results.load import ResultMismatch, read_entry_result

    path = Path(study_dir) / (entry.result_file or f"runs/{entry.run_id}/{RESULT_FILE}")
    try:
        return RunOutcome("completed", read_entry_result(study_dir, entry, study_id, seen))
    except ResultMismatch:
        raise
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} (a completed run of this study) is unreadable or corrupt "
                          f"({str(exc).splitlines()[0][:160]}); restore it, or mark its manifest entry "
                          "'failed' to rerun it") from None


def completed_outcomes(study_dir: Path, manifest, warn, writer=None) -> list[tuple]:
    """(entry, outcome) of every completed entry whose result.json proves it is that entry's. An entry
    pointing at another run's result (another cycle, another study, a file already counted) is not
    counted: it becomes `failed` with `ResultMismatch` (a resume reruns it; through `writer` when one
    already holds the manifest) and `warn(message)` names both."""
    from ..results.load import ResultMismatch

    seen: dict[Path, str] = {}
    outcomes = []
    for index, entry in enumerate(manifest.entries):
        if entry.status != "completed":
            continue
        try:
            outcomes.append((entry, load_completed(study_dir, entry, manifest.study_id, seen)))
        except ResultMismatch as exc:
            fields = dict(status="failed", error_type="ResultMismatch", error_message=str(exc), result_file=None)
            if writer is not None:
                writer.update(index, **fields)
            else:
                for name, value in fields.items():
                    setattr(entry, name, value)
            warn(f"{exc}; not counted")
    return outcomes


def collect_outcome(run_dir: Path, exit_info: ExitInfo) -> RunOutcome:
    """Decide what happened from exit state and the files the harness wrote."""
    result_path, error_path = run_dir / RESULT_FILE, run_dir / ERROR_FILE
    if exit_info.timed_out:
        kind = "silent" if (exit_info.timeout_reason or "").startswith("silence") else "timeout"
        return RunOutcome("failed", None, kind, exit_info.timeout_reason or "timed out", exit_info)
    if exit_info.oom_killed:
        return RunOutcome("failed", None, "OOMKilled", exit_info.detail or
                          "the container was killed for exceeding its memory limit", exit_info)
    if exit_info.exit_code == 0 and result_path.is_file():
        try:
            result = ExperimentResult.model_validate_json(result_path.read_text())
        except ValueError as exc:
            return RunOutcome("failed", None, "InvalidResult", f"result.json unreadable: {exc}", exit_info)
        return RunOutcome("completed", result, exit=exit_info)
    if error_path.is_file():
        try:
            err = HarnessError.model_validate_json(error_path.read_text())
            from .root_cause import with_root_cause

            return RunOutcome("failed", None, err.type, with_root_cause(run_dir, err.message), exit_info)
        except ValueError:
            pass
    code = exit_info.exit_code
    if code == HARNESS_EXIT_STORAGE:
        return RunOutcome("failed", None, "StorageError", "the harness ran out of storage writing the run "
                          f"({exit_info.detail or 'disk full or quota reached'}); free space and resume", exit_info)
    reason = f"harness exited with code {code} without writing {ERROR_FILE}"
    if code is not None and code < 0:
        reason = f"harness killed by signal {-code}"
    if code in (-9, 137):  # llem's own kills are timeouts (handled above): SIGKILL came from outside
        return RunOutcome("failed", None, "Killed",
                          "harness killed by SIGKILL from outside llem, and the kernel recorded no OOM kill "
                          f"({exit_info.detail or 'no OOM counter readable'}): another process or a user killed "
                          "it", exit_info)
    if exit_info.log_error is not None:
        return RunOutcome("failed", None, "StorageError", f"{reason}; its output could not be logged "
                          f"({exit_info.log_error})", exit_info)
    if exit_info.detail:
        reason += f" ({exit_info.detail})"
    return RunOutcome("failed", None, "HarnessCrashed", reason, exit_info)


class LinePump:
    """Reads the harness's stdout lines on a thread: log them, forward progress, note activity."""

    def __init__(self, lines: Iterable[str], log_path: Path, on_event: EventCallback):
        from ..domain.progress import decode_event

        self._decode = decode_event
        self._lines = lines
        self._log_path = log_path
        self._on_event = on_event
        self.last_activity = time.monotonic()
        self.log_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="llem-line-pump")
        self._thread.start()

    def _run(self) -> None:
        """Drain every line whatever happens to the log: a pump that stopped reading would leave
        the harness blocked on a full pipe until the silence timeout. A failed log write (disk
        full) stops the logging only, and is kept in `log_error` for the run's outcome."""
        log = self._open_log()
        for line in self._lines:
            self.last_activity = time.monotonic()
            if log is not None:
                try:
                    log.write(line if line.endswith("\n") else line + "\n")
                    log.flush()
                except (OSError, ValueError) as exc:
                    self.log_error = exc
                    log = self._close_log(log)
            event = self._decode(line)
            if event is not None:
                try:
                    self._on_event(event)
                except Exception:  # a progress display must never kill a measurement
                    pass
        self._close_log(log)

    def _open_log(self):
        try:
            return open(self._log_path, "a", encoding="utf-8")
        except OSError as exc:
            self.log_error = exc
            return None

    @staticmethod
    def _close_log(log) -> None:
        if log is not None:
            try:
                log.close()
            except OSError:  # the buffered tail could not be written either: already recorded
                pass
        return None

    def join(self, timeout: float = 5.0) -> None:
        self._thread.join(timeout)


def check_timeouts(started: float, pump: LinePump, timeout_s: float,
                   silence_timeout_s: float | None) -> str | None:
    """Return a reason string when a run has exceeded its wall-clock or silence limit."""
    now = time.monotonic()
    if now - started > timeout_s:
        return f"wall-clock timeout: still running after {timeout_s:.0f} s"
    if silence_timeout_s is not None and now - pump.last_activity > silence_timeout_s:
        return f"silence timeout: no progress output for {silence_timeout_s:.0f} s"
    return None
