"""StudyManifest: the study's crash-safe record, rewritten atomically after every transition.

Distinct from StudyResult: the manifest says what ran and how it ended (it exists from the
first moment of a study); the StudyResult carries the measurements and their summary.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import OpenModel

# submitted: handed to Slurm, not yet seen running (study/slurm.py)
EntryStatus = Literal["pending", "submitted", "running", "completed", "failed", "skipped", "interrupted"]
StudyStatus = Literal["running", "completed", "failed", "interrupted", "stopped"]  # stopped: circuit breaker
MANIFEST_FILE = "manifest.json"


class ManifestEntry(OpenModel):
    run_id: str | None = Field(None, description="run directory name; None for skipped grid points")
    experiment_index: int
    cycle: int
    config_hash: str | None = None
    config_summary: str
    engine: str | None = None
    runner: str | None = None
    status: EntryStatus = "pending"
    result_file: str | None = Field(None, description="relative to the study directory")
    error_type: str | None = None
    error_message: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    slurm_job_id: str | None = Field(None, description="JOBID_TASKID of the Slurm array task that runs it")


class ManifestCounters(OpenModel):
    total: int = 0
    pending: int = 0
    submitted: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    skipped: int = 0
    interrupted: int = 0


class StudyManifest(OpenModel):
    schema_version: int = 1
    study_id: str
    study_name: str
    study_dir: str
    status: StudyStatus = "running"
    created_at: str
    updated_at: str
    n_cycles: int
    cycle_order: str
    counters: ManifestCounters = Field(default_factory=ManifestCounters)
    executor: Literal["local", "slurm"] = Field("local", description="who runs the runs: this process, or Slurm")
    slurm_jobs: list[dict] = Field(default_factory=list, description="one record per sbatch submission")
    resumes: list[dict] = Field(default_factory=list, description="one record per `--resume`: when, what reran")
    stop_reason: str | None = Field(None, description="why the study stopped early (circuit breaker)")
    adaptive: list[dict] = Field(default_factory=list, description="adaptive cycles: per configuration, why and "
                                 "after how many runs it stopped (study/adaptive.py)")
    search: dict | None = Field(None, description="the search's state: trials, best, why it stopped (study/search.py)")
    entries: list[ManifestEntry] = Field(default_factory=list)
