"""Energy, baseline, warm-up, sampler, thermal and environment records.

Every energy figure says how it was measured (`method`) and, when it could not be measured,
why (`unavailable_reason`) — never a guess presented as a measurement.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import OpenModel
from .energy_check import EnergyCrossCheck, ExternalEnergy

EnergyMethod = Literal["counter", "integrated_instant_power", "rapl", "unavailable"]


class GpuEnergy(OpenModel):
    """Energy of one GPU over the measured window."""

    gpu_uuid: str
    gpu_index: int | None = Field(None, description="NVML index")
    energy_j: float | None = None
    method: EnergyMethod = "unavailable"
    unavailable_reason: str | None = None


class EnergyResult(OpenModel):
    """GPU energy of the measured window: raw (what the GPUs drew) and adjusted (minus idle)."""

    method: EnergyMethod = "unavailable"
    unavailable_reason: str | None = None
    gpu_energy_raw_j: float | None = None
    gpu_energy_adjusted_j: float | None = Field(
        None, description="raw - baseline_power_w * window_s (summed over GPUs); null without a baseline")
    per_gpu: list[GpuEnergy] = Field(default_factory=list)
    window_s: float | None = None
    mean_power_w: float | None = Field(None, description="gpu_energy_raw_j / window_s")
    readings_source: str | None = Field(
        None, description="where the GPU readings came from: real NVML, or a replayed trace (not a measurement)")
    baseline_power_w: float | None = Field(None, description="idle power subtracted for the adjusted value")
    baseline_subtracted: Literal["loaded_idle", "pre_load_idle"] | None = Field(
        None, description="which idle baseline the adjusted value subtracts (loaded idle when it was measured)")
    cross_check: EnergyCrossCheck | None = Field(
        None, description="counter energy beside the integral of sampled instant power, per GPU (null: no power "
                          "timeline)")
    external: ExternalEnergy | None = Field(
        None, description="an external meter's energy of the same window (null: no external_energy_file)")
    gpu_uuids: list[str] = Field(
        default_factory=list, description="the GPUs this energy is of, by UUID: the run's own (assigned) GPUs, "
        "the only ones measured; empty when no GPU was measured")
    idle_gpu_uuids: list[str] = Field(
        default_factory=list, description="measured GPUs that stayed idle through the window (utilisation about 0 "
        "and power about their idle power): their idle draw is in the figures; a comparability flag")


class BaselineResult(OpenModel):
    """Idle power of the assigned GPUs: before the model loads (`pre_load`) or with it resident (`loaded`)."""

    power_mean_w: float | None = Field(None, description="summed over GPUs")
    power_std_w: float | None = None
    n_samples: int = 0
    duration_s: float = 0.0
    method: EnergyMethod | Literal["instant_power_samples", "counter_delta"] = "unavailable"
    unavailable_reason: str | None = None
    gpu_uuids: list[str] = Field(default_factory=list)
    idle_temperature_c: float | None = None
    idle_temperature_per_gpu_c: dict[str, float] = Field(default_factory=dict, description="GPU UUID -> mean idle °C")
    idle_power_per_gpu_w: dict[str, float] = Field(
        default_factory=dict, description="GPU UUID -> mean idle power (W); what tells an idle GPU in the window")
    measured_at: str | None = Field(None, description="ISO-8601 UTC")
    fresh: bool = True
    age_s: float | None = Field(None, description="age when used (0 when fresh)")
    kind: Literal["pre_load", "loaded"] = Field(
        "pre_load", description="pre_load: no CUDA context yet; loaded: model resident, before warm-up")
    temperature_settled: bool | None = Field(
        None, description="the temperature gate passed before the baseline (null: no temperature readings)")
    temperature_wait_s: float | None = Field(None, description="time waited for the temperature to settle")
    temperature_drift_c: float | None = Field(
        None, description="largest per-GPU temperature range (max - min) during the baseline")


class WarmupResult(OpenModel):
    """How warm-up went: iterations until per-batch latency settled."""

    enabled: bool = True
    iterations: int = 0
    converged: bool = False
    final_cv: float | None = None
    cv_threshold: float | None = None
    latencies_s: list[float] = Field(default_factory=list)
    duration_s: float = 0.0
    stopped_by: Literal["converged", "max_batches", "max_duration_s"] | None = Field(
        None, description="what ended the warm-up: the CV fell under the threshold, or a bound was reached "
                          "without converging (max_batches or max_duration_s); null when disabled")
    max_duration_s: float | None = Field(None, description="the time bound the warm-up ran under (null: none)")


class SamplerStats(OpenModel):
    """What the background sampler achieved (the requested period is not the achieved one)."""

    requested_period_ms: float
    achieved_period_median_ms: float | None = None
    max_gap_ms: float | None = None
    n_samples: int = 0
    quantities: list[str] = Field(default_factory=list)


class ThrottleSummary(OpenModel):
    """Which throttle reasons occurred during the window and for how long (sampled)."""

    occurred: bool = False
    reasons_s: dict[str, float] = Field(default_factory=dict, description="reason -> seconds observed")
    other_events_s: dict[str, float] = Field(
        default_factory=dict, description="non-limiting clock events (gpu_idle, sync_boost…) -> seconds observed")


class ThermalSummary(OpenModel):
    temperature_start_c: float | None = None
    temperature_end_c: float | None = None
    temperature_max_c: float | None = None
    cooldown_wait_s: float | None = None
    temperature_per_gpu_c: dict[str, list[float | None]] = Field(
        default_factory=dict, description="GPU UUID -> [start, end, max] °C")


class CpuEnergy(OpenModel):
    """CPU package / DRAM energy from RAPL, reported separately from GPU energy."""

    method: EnergyMethod = "unavailable"
    unavailable_reason: str | None = None
    package_energy_j: float | None = None
    dram_energy_j: float | None = None
    domains: dict[str, float] = Field(default_factory=dict, description="RAPL domain name -> joules")
    window_s: float | None = None
    package_energy_per_output_token_j: float | None = Field(
        None, description="CPU package energy (whole socket, RAPL) / output tokens; never includes GPU energy")


class GpuInfo(OpenModel):
    index: int | None = None
    uuid: str | None = None
    name: str | None = None
    driver_version: str | None = None
    cuda_driver_version: str | None = None
    power_limit_w: float | None = None
    persistence_mode: bool | None = None
    mig_mode: bool | None = None
    ecc_enabled: bool | None = None
    sm_clock_mhz: float | None = None
    mem_clock_mhz: float | None = None
    memory_total_mb: float | None = None
    temperature_c: float | None = Field(None, description="when the environment was read")


class PhaseEnergy(OpenModel):
    """Prefill vs decode split of window energy (docs/methodology.md, "Phase split").

    Each phase is the union over requests of their prefill (or decode) intervals, clipped to the
    window, so concurrent requests never count the same joules twice; where a prefill overlaps a
    decode the time goes to the phase named in `overlap_attribution`.
    """

    method: Literal["timeline_integration", "unavailable"] = "unavailable"
    unavailable_reason: str | None = None
    prefill_energy_j: float | None = None
    decode_energy_j: float | None = None
    prefill_time_s: float | None = None
    decode_time_s: float | None = None
    prefill_samples: int | None = Field(None, description="power samples inside the prefill time")
    decode_samples: int | None = Field(None, description="power samples inside the decode time")
    overlap_s: float | None = Field(None, description="time when a prefill and a decode ran at once")
    overlap_attribution: str | None = Field(None, description="which phase the overlap time was given to")
    prefill_start: Literal["first_scheduled", "submission"] | None = Field(
        None, description="where each request's prefill starts: when the engine first scheduled it (engines that "
        "queue requests: vLLM, TensorRT-LLM), or its submission (engines that start a request when handed it)")
    queue_time_s: float | None = Field(
        None, description="time in the window when at least one request waited for the engine's scheduler (union "
        "of submission -> first scheduled); apart from prefill and decode; null where not reported")
