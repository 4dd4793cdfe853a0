"""The measured run as an ExperimentResult: written once for every workload.

Why one place: offline and serving runs report the same fields with the same meaning (window,
baseline, warm-up, energy, sampler, thermal, warnings); a field added or corrected here is added
or corrected in both modes. What differs per mode arrives in the WorkloadOutcome.

Warnings, in order and without repeats: the window's own, then the session's (environment,
baseline, warm-up), then the workload's; reads that failed after the window come last
(after_window.attach_window_records).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from llenergymeasure.domain import BaselineResult, EnvironmentInfo, ExperimentResult, RunSpec, WarmupResult
from llenergymeasure.domain.latency import LATENCY_REFERENCE

from .after_window import AfterWindow, attach_window_records
from .progress import now_iso
from .startup import harness_start
from .workload import WorkloadOutcome


@dataclass
class RunFacts:
    """What the run skeleton measured around the window (everything but the window and the workload's records)."""

    started_at: str
    wall_start_s: float  # time.monotonic() when the run started (harness_wall_s counts from here)
    environment: EnvironmentInfo
    baseline: BaselineResult | None
    loaded_idle: BaselineResult | None
    warmup: WarmupResult
    model_load_s: float
    engine_import_s: float | None  # None: this process imported no engine (serving)


def assemble_result(spec: RunSpec, facts: RunFacts, window: Any, outcome: WorkloadOutcome,
                    session_warnings: list[str], after: AfterWindow) -> ExperimentResult:
    """`window` is the session's WindowMeasurement; `session_warnings` its warnings outside the window."""
    records = outcome.requests
    warnings = list(window.warnings) + list(session_warnings) + list(outcome.warnings)
    result = ExperimentResult(
        run_id=spec.run_id, study_id=spec.study_id, experiment_index=spec.experiment_index, cycle=spec.cycle,
        config_hash=spec.config_hash, config=spec.config, started_at=facts.started_at, finished_at=now_iso(),
        effective=outcome.effective, n_requests=len(records), latency_reference=LATENCY_REFERENCE,
        prompt_cache=outcome.prompt_cache, input_tokens_total=sum(r.input_tokens for r in records),
        output_tokens_total=sum(r.output_tokens for r in records),
        window_s=window.window_s, model_load_s=facts.model_load_s, engine_import_s=facts.engine_import_s,
        harness_start=harness_start(),
        harness_wall_s=time.monotonic() - facts.wall_start_s, window_stall_s=window.stall_s,
        requests=records, metrics=outcome.metrics, energy=window.energy, phase_energy=outcome.phase_energy,
        baseline=facts.baseline, warmup=facts.warmup, sampler=window.sampler, throttle=window.throttle,
        thermal=window.thermal, cpu_energy=window.cpu_energy, environment=facts.environment,
        timeseries_file=window.timeseries_file, measurement_warnings=list(dict.fromkeys(warnings)),
        serving=outcome.serving, assigned_gpu_ids=spec.gpu_ids, token_timing=outcome.token_timing)
    return attach_window_records(result, facts.loaded_idle, window.contention, after)
