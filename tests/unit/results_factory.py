"""Build ExperimentResult records (data, not mocks) for the results unit tests."""
from __future__ import annotations

from pathlib import Path

from llenergymeasure.domain import (MANIFEST_FILE, EnergyResult, ExperimentConfig, ExperimentResult, ManifestEntry,
                                    RequestRecord, StudyManifest, compute_metrics)
from llenergymeasure.domain.io import write_json_atomic


def make_result(batch_size: int, cycle: int, window_s: float, energy_j: float | None,
                output_tokens: int = 8, n_requests: int = 4, input_tokens: int = 16,
                study_id: str = "study-1", experiment_index: int | None = None,
                baseline_w: float | None = 10.0) -> ExperimentResult:
    config = ExperimentConfig(model="/models/tiny", batch_size=batch_size, n_prompts=n_requests,
                              max_output_tokens=output_tokens)
    requests = [RequestRecord(index=i, batch_index=i // batch_size, input_tokens=input_tokens,
                              output_tokens=output_tokens, ttft_s=0.01 * (i + 1) * cycle,
                              e2e_latency_s=0.1 * (i + 1) * cycle,
                              tpot_s=(0.1 - 0.01) * (i + 1) * cycle / (output_tokens - 1))
                for i in range(n_requests)]
    if energy_j is None:
        energy = EnergyResult(method="unavailable", unavailable_reason="no NVIDIA GPU visible (NVML unavailable)")
    else:
        adjusted = None if baseline_w is None else energy_j - baseline_w * window_s
        energy = EnergyResult(method="counter", gpu_energy_raw_j=energy_j, gpu_energy_adjusted_j=adjusted,
                              window_s=window_s, mean_power_w=energy_j / window_s)
    index = experiment_index if experiment_index is not None else batch_size
    return ExperimentResult(
        run_id=f"{index:03d}_c{cycle}_tiny_bs{batch_size}", study_id=study_id, experiment_index=index,
        cycle=cycle, config_hash=config.config_hash(), config=config, started_at="2024-01-01T00:00:00Z",
        finished_at="2024-01-01T00:01:00Z", n_requests=n_requests, input_tokens_total=input_tokens * n_requests,
        output_tokens_total=output_tokens * n_requests, window_s=window_s, requests=requests,
        metrics=compute_metrics(requests, [0.01] * 4, window_s, energy), energy=energy)


def write_study_dir(root: Path, results: list[ExperimentResult]) -> Path:
    """A study directory as the study loop leaves it: manifest.json + runs/<run_id>/result.json."""
    study_dir = root / "tiny_20240101T000000"
    for r in results:
        run_dir = study_dir / "runs" / r.run_id
        run_dir.mkdir(parents=True)
        write_json_atomic(run_dir / "result.json", r)
    entries = [ManifestEntry(run_id=r.run_id, experiment_index=r.experiment_index, cycle=r.cycle,
                             config_hash=r.config_hash, config_summary=r.config.summary(), status="completed",
                             result_file=f"runs/{r.run_id}/result.json") for r in results]
    manifest = StudyManifest(study_id="study-1", study_name="tiny", study_dir=str(study_dir), status="completed",
                             created_at="2024-01-01T00:00:00Z", updated_at="2024-01-01T00:10:00Z", n_cycles=3,
                             cycle_order="interleaved", entries=entries)
    write_json_atomic(study_dir / MANIFEST_FILE, manifest)
    return study_dir
