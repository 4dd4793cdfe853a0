"""`llem run --executor slurm`: write the study's run directories, then one `sbatch --array`.

The study is expanded and ordered exactly as on one host (same manifest, same run directory
names), so a Slurm study reads like a local one. `--resume` first collects what Slurm finished,
then submits a new array for the runs that are neither completed nor still in Slurm.
"""
from __future__ import annotations

import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from .manifest import ManifestWriter, manifest_path, new_manifest, utc_now
from .slurm import (SLURM_DIR, SlurmOptions, batch_script, require_slurm, sbatch, time_limit_for,
                    write_secret_file, write_tasks_file)

RERUN_STATUSES = ("pending", "interrupted")  # + failed unless --skip-failed; never submitted/running


@dataclass
class SubmitReport:
    study_dir: Path
    job_id: str | None
    n_tasks: int
    in_slurm: int  # tasks of earlier submissions still queued or running


def job_name(study_id: str) -> str:
    return f"llem-{study_id}"[:120]


def local_plan(engines: set[str]):
    """Every engine runs with the local harness inside its Slurm task (no container tool yet)."""
    from ..runners.resolve import RunnerPlan

    return RunnerPlan(runners={e: "local" for e in engines}, sources={e: "--executor slurm" for e in engines})


def check_runners(study) -> None:
    """The site's container tool is not wired in yet: refuse a study that asks for Docker, by name."""
    from ..cli.errors import FORCE_DOCKER_ENV

    if os.environ.get(FORCE_DOCKER_ENV) == "1":
        raise ConfigError("llem-docker with --executor slurm: Slurm tasks run the local harness on the compute "
                          "node (Docker is rarely available there). Use `llem run --executor slurm` with the "
                          "engines installed in the environment llem runs from")
    docker = sorted(e for e, r in study.runners.items() if r == "docker")
    if docker:
        raise ConfigError(f"runners: {', '.join(f'{e}: docker' for e in docker)} cannot be used with --executor "
                          "slurm (tasks run the local harness); set them to local or remove them")


def submit_study(run, options: SlurmOptions, resume_dir: Path | None = None,
                 skip_failed: bool = False) -> SubmitReport:
    """Create (or resume) the study directory and submit its runs as one Slurm job array."""
    from .locks import StudyLock
    from .paths import check_storage, create_study_dir
    from .resume import open_for_resume, write_study_snapshot
    from .slurm_collect import collect_into

    study, ex = run.study, run.study.execution
    require_slurm()
    check_runners(study)
    if ex.parallel != 1:
        run.observer.notice("execution.parallel does not apply under Slurm: every run is its own array task and "
                            "Slurm places them (use --slurm-array-limit to cap how many run at once)")
    order, planned = run.planned_entries()
    plan = local_plan({e.engine for e in run.valid()})
    if resume_dir is not None:
        study_dir, manifest = open_for_resume(resume_dir, planned, ex.n_cycles, ex.cycle_order, run.config_now)
    else:
        check_storage(study.results_dir)
        study_dir = create_study_dir(study.results_dir, study.name)
        manifest = new_manifest(study_dir.name, study.name, study_dir, ex.n_cycles, ex.cycle_order, planned)
        manifest.executor = "slurm"
        write_study_snapshot(study_dir, study, run.search_dirs, run.cwd)
    if resume_dir is not None and manifest.slurm_jobs:
        options = options.merged_over(manifest.slurm_jobs[-1].get("options", {}))
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
        in_slurm = sum(1 for e in manifest.entries if e.status in ("submitted", "running"))
        statuses = RERUN_STATUSES + (() if skip_failed else ("failed",))
        todo = [i for i, e in enumerate(manifest.entries) if e.config_hash and e.status in statuses]
        if resume_dir is not None:
            manifest.resumes.append({"at": utc_now(), "pid": os.getpid(), "host": socket.gethostname(),
                                     "rerun": len(todo), "skip_failed": skip_failed, "executor": "slurm",
                                     "still_in_slurm": in_slurm,
                                     "completed_before": sum(1 for e in manifest.entries if e.status == "completed")})
            manifest.status, manifest.stop_reason = "running", None
        writer.write(fsync=True)
        try:
            job_id = _submit(run, writer, todo, planned, order, study_dir, plan, options) if todo else None
        except ConfigError as error:
            writer.manifest.status, writer.manifest.stop_reason = "stopped", f"nothing submitted: {error}"
            raise ConfigError(f"{error}. Nothing was submitted; the study directory is kept — fix the cause and "
                              f"`llem run --executor slurm --resume {study_dir}`") from None
        finally:
            writer.write(fsync=True)
        return SubmitReport(study_dir, job_id, len(todo), in_slurm)
    finally:
        lock.release()


def _gpus_per_task(gpus_per_run: int | None, configs: list) -> int:
    from .gpu_alloc import AllocationError, effective_gpus_per_run

    try:
        return effective_gpus_per_run(gpus_per_run, configs)
    except AllocationError as error:
        raise ConfigError(str(error)) from None


def _submit(run, writer: ManifestWriter, todo: list[int], planned, order, study_dir: Path, plan,
            options: SlurmOptions) -> str | None:
    from .loop import default_timeout_s

    ex = run.study.execution
    sequence = {index: n for n, index in enumerate((i for i, e in enumerate(planned) if e.config_hash), 1)}
    tasks, prepared_dirs = [], []
    for index in todo:
        exp_index, cycle = order[index]
        prepared = run.prepare_run(writer, index, run.expanded[exp_index], cycle, sequence[index],
                                   writer.manifest.study_id, study_dir, plan, gpu_ids=None)
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
    script.write_text(batch_script(study_dir, job_name(writer.manifest.study_id), len(tasks), tasks_file,
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
