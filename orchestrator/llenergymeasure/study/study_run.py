"""One study run: the plan that every executor shares.

Expand the grid, order the cycles, write the manifest (or reopen it to resume), take the locks,
create each run's directory and experiment.json, apply the circuit breaker, and summarise. How
the planned runs are then executed — one after another, in parallel on GPU sets, or as a Slurm
job array — is the executor's part (llenergymeasure/executors/); this module never asks which
executor or which kind of runner it holds.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..domain import RUN_SPEC_FILE, BaselineResult, ManifestEntry, RunSpec, StudyConfig, StudyResult
from ..domain.io import write_json_atomic
from ..runners.base import RunOutcome
from ..runners.signals import stop_requested, stop_signal
from .expand import ExpandedExperiment, expand, run_order
from .history import record_runs
from .manifest import ManifestWriter, manifest_path, new_manifest, utc_now
from .observer import StudyObserver
from .locks import GpuLock, StudyLock, device_keys
from .paths import check_storage, create_study_dir, free_run_id, run_dir_name
from .resume import open_for_resume, record_resume, rerun_indices, write_study_snapshot
from .summary import build_study_result

log = logging.getLogger(__name__)


def default_timeout_s(spec: RunSpec) -> float:
    """Generous wall-clock limit derived from the workload (override: execution.timeout_s).

    Serving: the server's ready timeout, then every request as if the server ran them one at a time
    (llama.cpp's does), open-loop sends spread over n_requests / rate, a duration cap bounding the
    sends; offline: every batch of the prompts and of the warm-up.
    """
    cfg = spec.config
    warmup = cfg.measurement.warmup.max_batches if cfg.measurement.warmup.enabled else 0
    baseline = cfg.measurement.baseline.duration_s if cfg.measurement.baseline.enabled else 0.0
    per_batch_s = 5.0 + 0.25 * cfg.max_output_tokens
    if cfg.mode == "serving" and cfg.serving is not None:
        s = cfg.serving
        load_s = s.n_requests * per_batch_s + (s.n_requests / s.request_rate if s.request_rate else 0.0)
        if s.duration_s is not None:  # no send after the cap; what is in flight then still finishes
            in_flight = s.concurrency if s.concurrency is not None else s.n_requests
            load_s = min(load_s, s.duration_s + in_flight * per_batch_s)
        prompts_s = 0.5 * cfg.n_prompts  # counting each prompt's tokens with the server
        return 600.0 + baseline + s.ready_timeout_s + prompts_s + warmup * per_batch_s + load_s
    n_batches = -(-cfg.n_prompts // cfg.batch_size)
    return 600.0 + baseline + (n_batches + warmup) * per_batch_s


class CircuitBreaker:
    """Stops a study after `limit` counted failures in a row (0 = never), in the order runs end.

    EngineUnavailable is not counted: it says nothing about the runs that can start."""

    def __init__(self, limit: int, study_dir: Path):
        self.limit, self.study_dir = limit, study_dir
        self.in_a_row = 0
        self.reason: str | None = None

    def record(self, entry: ManifestEntry) -> bool:
        """Count one finished run; True once the breaker has tripped (dispatch no more runs)."""
        counted = entry.status == "failed" and entry.error_type != "EngineUnavailable"
        self.in_a_row = self.in_a_row + 1 if counted else 0
        if self.reason is None and self.limit and self.in_a_row >= self.limit:
            self.reason = (f"circuit breaker: {self.in_a_row} runs failed in a row (last: {entry.error_type}: "
                           f"{entry.error_message}); the remaining runs stay pending — fix the cause and "
                           f"`llem run --resume {self.study_dir}`")
        return self.reason is not None


def sequence_numbers(planned: list[ManifestEntry]) -> dict[int, int]:
    """Manifest index -> the run's number in the study (1, 2, …; skipped entries get none)."""
    return {index: n for n, index in enumerate((i for i, e in enumerate(planned) if e.config_hash), 1)}


@dataclass
class Batch:
    """What an executor is handed: the planned entries to run now (`todo`, manifest indices in
    execution order) and where to report. Every state change goes through `writer` (the one
    manifest writer) and `run.observer`."""

    run: "StudyRun"
    writer: ManifestWriter
    order: list[tuple[int, int]]   # manifest index -> (experiment index, cycle)
    todo: list[int]
    sequence: dict[int, int]       # manifest index -> run number (names the run directory)
    study_dir: Path
    plan: object                   # runners.resolve.RunnerPlan: which runner and image per engine
    breaker: CircuitBreaker

    @property
    def study_id(self) -> str:
        return self.study_dir.name


RUN_DIR_MODE = 0o755


class StudyRun:
    """State of one study execution (kept small; the heavy lifting is in runners and harness)."""

    def __init__(self, study: StudyConfig, observer: StudyObserver | None = None, cli_runner: str | None = None,
                 search_dirs: list[Path] | None = None, cwd: Path | None = None, visit=None):
        """`visit(index, config)`: see study/expand.py Plan (the dry-run reads every config once)."""
        self.study = study
        self.cwd = Path(cwd or Path.cwd()).resolve()  # relative paths resolve here first (a resume: the start's)
        self.observer = observer or StudyObserver()
        self.cli_runner = cli_runner
        self.search_dirs = [Path(p).resolve() for p in search_dirs or []]
        self.expanded = expand(study, self.search_dirs, self.cwd, visit=visit)
        self.baselines: dict[tuple, BaselineResult] = {}
        self.cooldown_waits: dict[tuple, float] = {}  # GPU set -> cool-down waited before its next run
        self.waited_s = 0.0  # gaps and cool-downs: deliberate waits, apart from the study's overhead

    def config_now(self, index: int):
        """Configuration `index` as planned now (a refused resume compares it with the start's)."""
        return self.expanded.config(index) if index < len(self.expanded) else None

    def valid(self) -> list[ExpandedExperiment]:
        return [e for e in self.expanded if e.valid]

    def execute(self, executor, resume_dir: Path | None = None, skip_failed: bool = False,
                wait_for_devices: bool = False) -> StudyResult:
        """Run the study on this host through `executor` (sequential or parallel), or continue
        `resume_dir` (study/resume.py says what reruns). Everything but `executor.run` is the plan:
        locks, manifest, resume, circuit breaker, summary and history are the same for both."""
        from ..runners.resolve import resolve_runners

        study, ex = self.study, self.study.execution
        started_at, t0 = utc_now(), time.monotonic()
        stop_requested.clear()  # a previous study of this process may have been interrupted
        order, planned = self.planned_entries()
        # Runners, pre-flight, storage and device locks first: nothing is created or run before they pass.
        plan = resolve_runners(study, {e.engine for e in self.valid()}, self.cli_runner)
        locks: list = []
        try:
            self._preflight(plan, executor)
            if resume_dir is not None:
                study_dir, manifest = self.open_existing(resume_dir, planned)
            else:
                check_storage(study.results_dir)
            keys = device_keys(ex.gpus, "docker.gpus" if study.docker.gpus else "execution.gpus",
                               allow_fake=ex.allow_parallel_cpu)
            locks.append(GpuLock(keys, str(resume_dir or study.results_dir),
                                 wait=wait_for_devices, on_wait=self.observer.notice))
            locks[-1].acquire()
            if resume_dir is None:
                study_dir, manifest = self.create_study(planned, executor.name)
            locks.append(StudyLock(study_dir))
            locks[-1].acquire()
            previous = self._resume(manifest, skip_failed, study_dir, executor.name) if resume_dir is not None else []
        except BaseException:
            plan.close()
            for lock in reversed(locks):
                lock.release()
            raise
        for message in plan.notices + plan.warnings:
            self.observer.notice(message)
        if study.docker.gpus is not None:
            from ..domain.study import DOCKER_GPUS_DEPRECATED

            self.observer.notice(DOCKER_GPUS_DEPRECATED)
        writer = ManifestWriter(manifest, manifest_path(study_dir))
        writer.write(fsync=True)
        todo = rerun_indices(manifest, skip_failed)
        rerun = set(todo)
        kept = [e for i, e in enumerate(manifest.entries) if i not in rerun and e.status != "skipped"]
        if kept:  # a resume: what earlier invocations finished is kept, not "skipped"
            statuses = sorted({e.status for e in kept})
            self.observer.notice(f"{len(kept)} runs kept from before ({', '.join(statuses)}); not rerun")
        self.observer.study_started(str(study_dir), len(todo), sum(e.status == "skipped" for e in manifest.entries))
        outcomes: list[tuple[ManifestEntry, RunOutcome | None]] = previous
        n_previous = len(previous)  # runs of an earlier invocation: already in the duration history
        status = "completed"
        breaker = CircuitBreaker(ex.max_consecutive_failures, study_dir)
        todo = self.decided_todo(writer, order, todo, study_dir)
        batch = Batch(self, writer, order, todo, sequence_numbers(planned), study_dir, plan, breaker)
        try:
            outcomes += executor.run(batch)
            if breaker.reason:
                status = "stopped"
                writer.manifest.stop_reason = breaker.reason
                self.observer.notice(breaker.reason)
        except KeyboardInterrupt:
            status = "interrupted"
            writer.manifest.stop_reason = f"interrupted by {stop_signal()}"
            raise
        except BaseException:
            status = "failed"  # a runner error: what was measured so far is kept and summarised
            raise
        finally:
            counters = writer.counters()
            if status == "completed" and counters.failed and not counters.completed:
                status = "failed"
            writer.set_status(status)
            plan.close()
            for lock in reversed(locks):
                lock.release()
            result = build_study_result(study, study_dir, writer.manifest, outcomes, started_at,
                                        time.monotonic() - t0, plan)
            from ..results.pareto import answer_line

            if answer_line(result.pareto):
                self.observer.notice(answer_line(result.pareto))
            record_runs(outcomes[n_previous:], waited_s=self.waited_s,  # for --dry-run's estimate
                        study_wall_s=time.monotonic() - t0 if ex.parallel == 1 and status == "completed" else None)
            self.observer.study_finished(result)
        return result

    def decided_todo(self, writer: ManifestWriter, order, todo: list[int], study_dir: Path):
        """The runs to do as a list, or, with adaptive cycles or a search, decided one at a time after
        each outcome (study/adaptive.py, study/search.py): the sequential executor iterates it, the
        parallel one asks each run as it starts or runs a search in waves, Slurm submits waves."""
        if self.study.search is not None:
            from .search import SearchTodo

            return SearchTodo(self, writer, order, todo, study_dir)
        if self.study.execution.target_ci_pct is not None:
            from .adaptive import AdaptiveTodo

            return AdaptiveTodo(self, writer, order, todo, study_dir)
        return todo

    def open_existing(self, resume_dir: Path, planned: list[ManifestEntry]):
        """(study_dir, manifest) of a study to continue; refused when its plan changed (study/resume.py)."""
        ex = self.study.execution
        return open_for_resume(resume_dir, planned, ex.planned_cycles, ex.cycle_order, self.config_now)

    def create_study(self, planned: list[ManifestEntry], executor_name: str):
        """A new study directory with its manifest (every run pending) and its study.json snapshot."""
        study, ex = self.study, self.study.execution
        study_dir = create_study_dir(study.results_dir, study.name)
        manifest = new_manifest(study_dir.name, study.name, study_dir, ex.planned_cycles, ex.cycle_order, planned)
        manifest.executor = executor_name
        write_study_snapshot(study_dir, study, self.search_dirs, self.cwd)
        return study_dir, manifest

    def planned_entries(self) -> tuple[list[tuple[int, int]], list[ManifestEntry]]:
        """(experiment index, cycle) in execution order, and the manifest entry each starts as."""
        ex = self.study.execution
        order = run_order(len(self.expanded), ex.planned_cycles, ex.cycle_order, ex.shuffle_seed)
        return order, [self._entry(self.expanded[i], cycle) for i, cycle in order]

    def _resume(self, manifest, skip_failed: bool, study_dir: Path,
                executor_name: str) -> list[tuple[ManifestEntry, RunOutcome]]:
        """Mark runs whose process died `interrupted`, record the resume, load completed results."""
        from ..runners.base import completed_outcomes

        for entry in manifest.entries:
            if entry.status == "running":  # its orchestrator is gone: we hold the study lock
                entry.status, entry.error_type = "interrupted", "Interrupted"
                entry.error_message = "the process running it ended without recording an outcome (found at resume)"
        # A completed entry whose result.json is not its own is not kept: it is rerun like a failed run.
        previous = completed_outcomes(study_dir, manifest, lambda message: self.observer.notice(f"warning: {message}"))
        record_resume(manifest, len(rerun_indices(manifest, skip_failed)), skip_failed)
        manifest.executor = executor_name  # a Slurm study continued here (nothing of it is left in Slurm)
        return previous

    def _entry(self, expanded: ExpandedExperiment, cycle: int) -> ManifestEntry:
        if not expanded.valid:
            return ManifestEntry(experiment_index=expanded.index, cycle=cycle, config_summary=expanded.label,
                                 status="skipped", error_type="ConfigError", error_message=expanded.skip_reason)
        return ManifestEntry(experiment_index=expanded.index, cycle=cycle, config_hash=expanded.config_hash,
                             config_summary=expanded.summary, engine=expanded.engine)

    def _preflight(self, plan, executor) -> None:
        """PreFlightError (missing image, no GPU runtime) stops the study before any run starts.

        First, whatever the runner: stop what dead llem processes left running (harness processes,
        containers) — it would load the devices this study measures — and remove their secrets."""
        from ..runners import watchdog

        watchdog.start()
        left = watchdog.stop_leftovers()
        if left:
            self.observer.notice(f"stopped what a crashed llem left behind: {', '.join(left)}")
        executor.check(self)  # e.g. ConfigError (no GPUs, too few for parallel) before the study dir exists
        if self.study.search is not None:
            from .search import require_optuna

            require_optuna()
        for engine in sorted({e.engine for e in self.valid()}):
            runner = plan.runner_for(engine)
            if runner is not None:
                runner.preflight([e.config for e in self.valid() if e.engine == engine])
                if getattr(runner, "orphans_removed", None):
                    self.observer.notice(f"removed what a crashed llem left running: {', '.join(runner.orphans_removed)}")
                for message in getattr(runner, "notices", None) or ():
                    self.observer.notice(message)

    def gap(self, seconds: float) -> None:
        if seconds > 0:
            self.observer.notice(f"waiting {seconds:g} s before the next run")
            time.sleep(seconds)
            self.waited_s += seconds

    def prepare_run(self, writer: ManifestWriter, index: int, expanded: ExpandedExperiment, cycle: int,
                    sequence: int, study_id: str, study_dir: Path, plan,
                    gpu_ids: list[str] | None = None) -> tuple[Path, RunSpec, object] | None:
        """Create the run directory and its experiment.json (shared with the Slurm executor).

        Returns None after recording the failure when the run cannot start (no runner for its
        engine, or the run directory cannot be written)."""
        cfg = expanded.config
        engine = cfg.engine
        runner = plan.runner_for(engine)
        config_hash = cfg.config_hash()
        run_id = free_run_id(study_dir / "runs", run_dir_name(sequence, cycle, cfg, config_hash))
        if runner is None:
            writer.update(index, status="failed", runner=None, error_type="EngineUnavailable",
                          error_message=plan.unavailable.get(engine, f"no runner for engine {engine}"),
                          finished_at=utc_now())
            self.observer.run_finished(writer.manifest.entries[index], None)
            return None
        run_dir = study_dir / "runs" / run_id
        gpu_ids = gpu_ids or self.study.docker.gpus  # parallel runs get their own disjoint set
        spec = RunSpec(study_id=study_id, run_id=run_id, experiment_index=expanded.index, cycle=cycle, config=cfg,
                       config_hash=config_hash, gpu_ids=gpu_ids, baseline=self.baselines.get(self.baseline_key(
                           gpu_ids, runner, plan, engine)),
                       runner=runner.name, image=plan.image_for(engine),
                       cooldown_wait_s=self.cooldown_waits.pop(tuple(gpu_ids or ["all"]), None))
        try:
            run_dir.mkdir(parents=True)
            # Owner-only write, for every runner: the container runs the harness as the invoking
            # uid:gid (docker_runner), so it needs no more; another user must not be able to replace
            # result.json or plant the harness's files.
            os.chmod(run_dir, RUN_DIR_MODE)
            write_json_atomic(run_dir / RUN_SPEC_FILE, spec)
        except OSError as exc:  # disk full, results dir gone or read-only: this run fails, earlier ones stay
            writer.update(index, status="failed", run_id=run_id, runner=runner.name, finished_at=utc_now(),
                          error_type="StorageError", error_message=f"cannot write {run_dir}: {exc.strerror or exc}")
            self.observer.run_finished(writer.manifest.entries[index], None)
            return None
        return run_dir, spec, runner

    @staticmethod
    def baseline_key(gpu_ids: list[str] | None, runner, plan, engine: str) -> tuple:
        return tuple(gpu_ids or ["all"]), runner.name, plan.image_for(engine)

    def remember_baseline(self, key: tuple, baseline: BaselineResult | None) -> None:
        """A fresh idle baseline is reused by the next runs on the same GPUs, runner and image."""
        if baseline is not None and baseline.fresh and baseline.power_mean_w is not None:
            self.baselines[key] = baseline
