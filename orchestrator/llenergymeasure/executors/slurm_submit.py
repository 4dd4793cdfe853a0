"""The Slurm executor: `llem run --executor slurm` writes the run directories, then one `sbatch --array`.

The study is expanded and ordered exactly as on one host (same manifest, same run directory
names, same plan code in study/), so a Slurm study reads like a local one. `--resume` first
collects what Slurm finished, then submits a new array for the runs that are neither completed
nor still in Slurm. The study is finalised later, by the collector (slurm_collect.py).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..study.manifest import ManifestWriter, manifest_path, utc_now
from ..study.study_run import Batch, CircuitBreaker, default_timeout_s, sequence_numbers
from .base import Executor
from .slurm import (LIVE, SLURM_DIR, SlurmOptions, batch_script, job_name, local_plan, require_slurm, sbatch,
                    time_limit_for, write_secret_file, write_tasks_file)


@dataclass
class SubmitReport:
    study_dir: Path
    job_id: str | None
    n_tasks: int
    in_slurm: int  # tasks of earlier submissions still queued or running


def check_runners(study) -> None:
    """The site's container tool is not wired in yet: refuse a study that asks for Docker, by name."""
    from ..runners.resolve import FORCE_DOCKER_ENV

    if os.environ.get(FORCE_DOCKER_ENV) == "1":
        raise ConfigError("llem-docker with --executor slurm: Slurm tasks run the local harness on the compute "
                          "node (Docker is rarely available there). Use `llem run --executor slurm` with the "
                          "engines installed in the environment llem runs from")
    docker = sorted(e for e, r in study.runners.items() if r == "docker")
    if docker:
        raise ConfigError(f"runners: {', '.join(f'{e}: docker' for e in docker)} cannot be used with --executor "
                          "slurm (tasks run the local harness); set them to local or remove them")


class SlurmExecutor(Executor):
    """One Slurm array task per planned run; `run` submits and returns before any run ends."""

    name = "slurm"

    def __init__(self, options: SlurmOptions | None = None):
        self.options = options or SlurmOptions()
        self.job_id: str | None = None  # the array job of the last submission, None when nothing was submitted

    def check(self, run) -> None:
        from ..study.adaptive import refuse_unless_sequential

        refuse_unless_sequential(run.study, "Slurm", search_in_waves=True, adaptive_cycles=True)
        require_slurm()
        check_runners(run.study)
        if run.study.execution.parallel != 1:
            run.observer.notice("execution.parallel does not apply under Slurm: every run is its own array task and "
                                "Slurm places them (use --slurm-array-limit to cap how many run at once)")

    def run(self, batch: Batch) -> list:
        """Prepare every run directory of `batch.todo`, submit them as one array, mark them submitted."""
        if batch.todo:
            self.job_id = _submit(batch, self.options)
        return []  # nothing ends here: the collector reads the outcomes

    def submit(self, run, resume_dir: Path | None = None, skip_failed: bool = False) -> SubmitReport:
        return submit_study(run, self, resume_dir, skip_failed)


def submit_study(run, executor: SlurmExecutor, resume_dir: Path | None = None,
                 skip_failed: bool = False) -> SubmitReport:
    """Create (or resume) the study directory and submit its runs as one Slurm job array."""
    from ..study.locks import StudyLock
    from ..study.paths import check_storage
    from ..study.resume import record_resume, rerun_indices
    from .slurm_collect import collect_into

    study, ex = run.study, run.study.execution
    executor.check(run)
    order, planned = run.planned_entries()
    plan = local_plan({e.engine for e in run.valid()})
    if resume_dir is not None:
        study_dir, manifest = run.open_existing(resume_dir, planned)
    else:
        check_storage(study.results_dir)
        study_dir, manifest = run.create_study(planned, executor.name)
    if resume_dir is not None and manifest.slurm_jobs:
        executor.options = executor.options.merged_over(manifest.slurm_jobs[-1].get("options", {}))
    lock = StudyLock(study_dir)
    lock.acquire()
    try:
        writer = ManifestWriter(manifest, manifest_path(study_dir))
        if resume_dir is not None:
            if manifest.executor == "slurm":
                collect_into(writer, study_dir, run.observer)
            else:  # a study started on one host, continued on Slurm (we hold its lock: nothing runs it)
                writer.update_many({i: dict(status="interrupted", error_type="Interrupted",
                                            error_message="its process ended without recording an outcome")
                                    for i, e in enumerate(manifest.entries) if e.status == "running"})
                manifest.executor = "slurm"
        in_slurm = sum(1 for e in manifest.entries if e.status in LIVE)
        todo = rerun_indices(manifest, skip_failed, live=LIVE)
        if study.search is not None:  # a search submits one wave of trials at a time (study/search.py)
            from ..study.search import SearchTodo

            todo = SearchTodo(run, writer, order, todo, study_dir).next_wave(study.search.trials_per_wave)
        elif ex.target_ci_pct is not None:  # adaptive cycles: one wave, decided again when it is collected
            from ..study.adaptive import AdaptiveTodo

            todo = AdaptiveTodo(run, writer, order, todo, study_dir).next_wave()
        if resume_dir is not None:
            record_resume(manifest, len(todo), skip_failed, executor="slurm", still_in_slurm=in_slurm)
        writer.write(fsync=True)
        batch = Batch(run, writer, order, todo, sequence_numbers(planned), study_dir, plan,
                      CircuitBreaker(0, study_dir))  # every run is submitted at once: nothing to break
        executor.job_id = None
        try:
            executor.run(batch)
        except ConfigError as error:
            writer.manifest.status, writer.manifest.stop_reason = "stopped", f"nothing submitted: {error}"
            raise ConfigError(f"{error}. Nothing was submitted; the study directory is kept — fix the cause and "
                              f"`llem run --executor slurm --resume {study_dir}`") from None
        finally:
            writer.write(fsync=True)
        return SubmitReport(study_dir, executor.job_id, len(todo), in_slurm)
    finally:
        lock.release()


def submit_next_wave(writer: ManifestWriter, study_dir: Path, observer=None) -> bool:
    """The collector found nothing of a search, or of adaptive cycles, left in Slurm: decide and submit
    the next wave. False when the study has neither or is decided (it then records why each stopped).
    Adaptive cycles' next wave takes only pending runs: a failed one is not retried wave after wave
    (`--resume` retries it, as for any study)."""
    from ..study.resume import read_study_snapshot, rerun_indices, snapshot_cwd
    from ..study.search import SearchTodo
    from ..study.study_run import StudyRun

    try:
        study, search_dirs = read_study_snapshot(study_dir)
    except ConfigError:
        if writer.manifest.search is not None:
            raise
        return False  # no snapshot: nothing says this study runs in waves
    in_waves = study.search is not None or study.execution.target_ci_pct is not None
    if not in_waves or (writer.manifest.search or {}).get("stopped"):
        return False
    run = StudyRun(study, observer=observer, search_dirs=search_dirs, cwd=snapshot_cwd(study_dir))
    order, planned = run.planned_entries()
    if study.search is not None:
        todo = rerun_indices(writer.manifest, False, live=LIVE)
        wave = SearchTodo(run, writer, order, todo, study_dir).next_wave(study.search.trials_per_wave)
    else:
        from ..study.adaptive import AdaptiveTodo

        todo = [i for i, e in enumerate(writer.manifest.entries) if e.config_hash and e.status == "pending"]
        wave = AdaptiveTodo(run, writer, order, todo, study_dir).next_wave()
    if not wave:
        writer.write(fsync=True)
        return False
    jobs = writer.manifest.slurm_jobs
    options = SlurmOptions().merged_over(jobs[-1].get("options", {})) if jobs else SlurmOptions()
    batch = Batch(run, writer, order, wave, sequence_numbers(planned), study_dir,
                  local_plan({e.engine for e in run.valid()}), CircuitBreaker(0, study_dir))
    _submit(batch, options)
    writer.write(fsync=True)
    return True


def _gpus_per_task(gpus_per_run: int | None, configs: list) -> int:
    from .gpu_alloc import AllocationError, effective_gpus_per_run

    try:
        return effective_gpus_per_run(gpus_per_run, configs)
    except AllocationError as error:
        raise ConfigError(str(error)) from None


def _submit(batch: Batch, options: SlurmOptions) -> str | None:
    run, writer, study_dir = batch.run, batch.writer, batch.study_dir
    ex = run.study.execution
    tasks, prepared_dirs = [], []
    for index in batch.todo:
        exp_index, cycle = batch.order[index]
        prepared = run.prepare_run(writer, index, run.expanded[exp_index], cycle, batch.sequence[index],
                                   batch.study_id, study_dir, batch.plan, gpu_ids=None)
        if prepared is None:
            continue
        run_dir, spec, _runner = prepared
        prepared_dirs.append(run_dir)
        tasks.append({"index": index, "run_dir": str(run_dir.relative_to(study_dir)),
                      "timeout_s": ex.timeout_s or default_timeout_s(spec),
                      "silence_timeout_s": ex.silence_timeout_s})
    if not tasks:
        return None
    k = len(writer.manifest.slurm_jobs) + 1
    slurm_dir = study_dir / SLURM_DIR
    (slurm_dir / "logs").mkdir(parents=True, exist_ok=True)
    tasks_file, script = slurm_dir / f"tasks-{k}.json", slurm_dir / f"submit-{k}.sh"
    write_tasks_file(tasks_file, study_dir, tasks, write_secret_file(study_dir))
    gpus = options.gpus_per_task
    if gpus is None:
        gpus = _gpus_per_task(ex.gpus_per_run, [e.config for e in run.valid()])
    time_limit = options.time_limit or time_limit_for([t["timeout_s"] for t in tasks])
    from ..domain.io import write_text_atomic  # an exclusive temp file: never written through a link

    write_text_atomic(script, batch_script(study_dir, job_name(writer.manifest.study_id), len(tasks), tasks_file,
                                           options, gpus, time_limit))
    try:
        job_id = sbatch(script, options.sbatch_args)
    except BaseException:
        for run_dir in prepared_dirs:  # nothing ran: leave no half-made run directories behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    now = utc_now()
    writer.manifest.slurm_jobs.append({"job_id": job_id, "submitted_at": now, "n_tasks": len(tasks),
                                       "script": str(script.relative_to(study_dir)),
                                       "gpus_per_task": gpus, "time_limit": time_limit,
                                       "options": options.to_record()})
    writer.update_many({t["index"]: dict(status="submitted", run_id=Path(t["run_dir"]).name, runner="local",
                                         slurm_job_id=f"{job_id}_{i}", started_at=None, finished_at=None,
                                         duration_s=None, error_type=None, error_message=None, result_file=None)
                        for i, t in enumerate(tasks)})
    return job_id
