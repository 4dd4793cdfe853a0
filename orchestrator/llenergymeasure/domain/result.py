"""ExperimentResult: what one harness run measured (`result.json`)."""
from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field

from .base import OpenModel
from .config import ExperimentConfig
from .contention import ContentionResult
from .measurement import (BaselineResult, CpuEnergy, EnergyResult, GpuInfo, PhaseEnergy, SamplerStats,
                          ThermalSummary, ThrottleSummary, WarmupResult)
from .metrics import Metrics, PromptCache, RequestRecord
from .serving import ServingResult
from .token_timing import TokenTiming

RESULT_SCHEMA_VERSION = 1


class EnvironmentInfo(OpenModel):
    """Where the numbers came from: software versions, device, CPU, GPUs."""

    python_version: str | None = None
    platform: str | None = None
    hostname: str | None = None
    cpu_model: str | None = None
    cpu_count: int | None = None
    in_container: bool = False
    llenergymeasure_version: str | None = None
    engine_version: str | None = None
    torch_version: str | None = None
    transformers_version: str | None = None
    cuda_version: str | None = None
    device: str | None = Field(None, description="'cuda' or 'cpu' — where inference ran")
    device_name: str | None = None
    gpus: list[GpuInfo] = Field(default_factory=list)
    foreign_processes: list[dict[str, Any]] = Field(default_factory=list)
    extra_mounts: list[str] = Field(
        default_factory=list, description="bind mounts the study added to the container (docker.extra_mounts), "
                                          "each 'HOST:CONTAINER:ro' or ':rw'")


class ExperimentResult(OpenModel):
    """One measured run of one configuration in one cycle."""

    schema_version: int = RESULT_SCHEMA_VERSION
    run_id: str
    study_id: str
    experiment_index: int
    cycle: int
    config_hash: str
    config: ExperimentConfig
    started_at: str
    finished_at: str
    effective: dict[str, Any] | None = Field(
        default_factory=dict, description="parameters the engine actually used; null when unreadable "
        "(reason in after_window_unavailable)")
    n_requests: int
    input_tokens_total: int
    output_tokens_total: int
    window_s: float = Field(
        ..., description="measured window (offline: the batches, device-synchronised at both edges; serving: the "
                         "steady state)")
    engine_import_s: float | None = Field(
        None, description="importing the engine's modules in the harness process, timed apart from the load; near 0 "
                          "when forked from the local runner's pre-imported worker; null in serving mode")
    model_load_s: float | None = Field(
        None, description="loading the model, after the engine import (serving: server start to ready)")
    harness_start: str | None = Field(
        None, description="how the harness process started: 'fresh process' (with the reason when the "
                          "pre-imported worker could not be used) or 'forked from a pre-imported worker'")
    harness_wall_s: float | None = None
    window_stall_s: float | None = Field(
        None, description="seconds inside the measured window the harness process did not run (stopped, "
                          "suspended, not scheduled); > 0 flags the run in the statistics; null in older results")
    requests: list[RequestRecord] = Field(default_factory=list)
    latency_reference: str | None = Field(
        None, description="what every latency is measured from (domain/latency.py); null in older results")
    prompt_cache: PromptCache | None = Field(None, description="prompt-cache use of the measured requests")
    token_timing: TokenTiming | None = Field(
        None, description="how per-token times were taken and whether inside the energy window; null in older results")
    metrics: Metrics = Field(default_factory=Metrics)
    energy: EnergyResult = Field(default_factory=EnergyResult)
    phase_energy: PhaseEnergy = Field(default_factory=PhaseEnergy)
    baseline: BaselineResult | None = None
    warmup: WarmupResult = Field(default_factory=WarmupResult)
    sampler: SamplerStats | None = None
    throttle: ThrottleSummary | None = None
    thermal: ThermalSummary = Field(default_factory=ThermalSummary)
    cpu_energy: CpuEnergy = Field(default_factory=CpuEnergy)
    environment: EnvironmentInfo = Field(default_factory=EnvironmentInfo)
    timeseries_file: str | None = None
    measurement_warnings: list[str] = Field(default_factory=list)
    assigned_gpu_ids: list[str] | None = Field(
        None, description="GPUs the orchestrator (or Slurm) assigned to this run; None = all visible")
    serving: ServingResult | None = Field(None, description="mode: serving only")
    # Energy window: loaded idle, contention, reads after the window.
    loaded_idle: BaselineResult | None = Field(
        None, description="idle power with the model resident, before warm-up; `baseline` is the pre-load idle")
    contention: ContentionResult | None = Field(None, description="foreign GPU processes and host CPU load "
                                                "during the window")
    after_window_unavailable: dict[str, str] = Field(
        default_factory=dict, description="read after the window -> why it could not be read (the value is null)")


class HarnessError(OpenModel):
    """`error.json`: what the harness could say about its own failure."""

    type: str
    message: str
    traceback: str | None = None
    # "stage", not "phase" (which means prefill/decode): error.json files written before the rename say "phase".
    stage: str | None = Field(None, validation_alias=AliasChoices("stage", "phase"),
                              description="the run's lifecycle stage the harness failed in (e.g. loading)")
