"""StudyResult: what `run_study` returns and `study_result.json` holds."""
from __future__ import annotations

from typing import Any

from pydantic import Field

from .base import OpenModel
from .result import ExperimentResult


class StudySummary(OpenModel):
    total_runs: int = 0
    completed: int = 0
    failed: int = 0
    skipped: int = 0
    interrupted: int = 0
    wall_time_s: float = 0.0
    gpu_energy_raw_j: float | None = Field(None, description="sum over completed runs that measured it")
    gpu_energy_adjusted_j: float | None = None
    warnings: list[str] = Field(default_factory=list)


class StudyResult(OpenModel):
    schema_version: int = 1
    study_id: str
    study_name: str
    study_dir: str
    status: str
    started_at: str
    finished_at: str
    experiments: list[ExperimentResult] = Field(default_factory=list)
    result_files: list[str] = Field(default_factory=list, description="relative to the study directory")
    measurement_protocol: dict[str, Any] = Field(default_factory=dict)
    summary: StudySummary = Field(default_factory=StudySummary)
    configurations: list[dict[str, Any]] = Field(default_factory=list,
                                                 description="per-configuration statistics across cycles")
    configurations_by_gpu: list[dict[str, Any]] = Field(
        default_factory=list, description="the same statistics per (configuration, GPU set): compares GPUs")
    pareto: dict[str, Any] | None = Field(None, description="noise-aware Pareto front of energy against latency "
                                          "and, with the study's slo, the least-energy configuration meeting it")
    carbon: dict[str, Any] | None = Field(None, description="gCO2e per 1,000 requests and per million output "
                                          "tokens per configuration, from the study's carbon: (null with reason)")
    search: dict[str, Any] | None = Field(None, description="the search's history when the study had search:")
