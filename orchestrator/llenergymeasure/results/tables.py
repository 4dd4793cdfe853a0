"""Tidy tables: one row per run, one column per metric; configuration fields as `config.*` columns.

Why flat dotted names: the same column name (`energy_per_output_token_j`, `ttft_s.p50`,
`config.batch_size`) is used by results.csv/parquet, summary.csv, `llem results` and the plots,
so a number means the same thing wherever it is read. Standard library only (pandas is used by
the writers, lazily).
"""
from __future__ import annotations

import json
from typing import Any, Iterable

from ..domain import ExperimentResult
from .comparability import readings, run_flags

ID_COLUMNS = ("run_id", "study_id", "experiment_index", "cycle", "config_hash", "config_summary",
              "started_at", "finished_at")
COUNT_COLUMNS = ("n_requests", "input_tokens_total", "output_tokens_total", "window_s", "model_load_s",
                 "harness_wall_s", "engine_import_s")
# How the latency figures were taken: a row read on its own must say what its numbers mean.
METHOD_COLUMNS = ("latency_reference", "harness_start")
# Sub-records flattened with their name as prefix; lists inside them become JSON strings.
PREFIXED_SECTIONS = ("energy", "phase_energy", "baseline", "warmup", "sampler", "throttle", "thermal",
                     "cpu_energy", "serving", "loaded_idle", "contention", "prompt_cache", "token_timing")
DROPPED_LISTS = {"energy": ("per_gpu",), "warmup": ("latencies_s",), "baseline": ("gpu_uuids",),
                 "loaded_idle": ("gpu_uuids",)}


def flatten(value: Any, prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    """Nested dicts -> dotted keys; lists -> JSON text (parquet/CSV need scalar cells)."""
    if isinstance(value, dict):
        if not value and prefix:
            return out
        for key, item in value.items():
            flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, (list, tuple)):
        out[prefix] = json.dumps(value, default=str) if value else None
    else:
        out[prefix] = value
    return out


def gpu_set(result: ExperimentResult) -> str:
    """Which device produced a run, for comparing one configuration across GPUs.

    The UUIDs of the GPUs the harness measured, joined by '+'; without a measured GPU, the ids
    the orchestrator assigned (fake ids in a CPU test); else the CPU of the host it ran on.
    """
    uuids = [g.uuid for g in result.environment.gpus if g.uuid]
    if uuids:
        return "+".join(uuids)
    if result.assigned_gpu_ids:
        return "assigned:" + "+".join(result.assigned_gpu_ids)
    return f"cpu@{result.environment.hostname or 'unknown host'}"


def run_row(result: ExperimentResult) -> dict[str, Any]:
    """One tidy row for one run (requests are summarised by their distributions, not listed)."""
    row: dict[str, Any] = {
        "run_id": result.run_id, "study_id": result.study_id, "experiment_index": result.experiment_index,
        "cycle": result.cycle, "config_hash": result.config_hash, "config_summary": result.config.summary(),
        "started_at": result.started_at, "finished_at": result.finished_at, "gpu_set": gpu_set(result),
    }
    for name in COUNT_COLUMNS + METHOD_COLUMNS:
        row[name] = getattr(result, name)
    flatten(result.metrics.model_dump(mode="json"), "", row)
    for section in PREFIXED_SECTIONS:
        record = getattr(result, section)
        if record is None:
            continue
        data = record.model_dump(mode="json")
        for dropped in DROPPED_LISTS.get(section, ()):
            data.pop(dropped, None)
        for key, value in list(data.items()):  # keyed by GPU UUID: one JSON cell, not a column per GPU
            if "per_gpu" in key and isinstance(value, dict):
                data[key] = json.dumps(value, sort_keys=True) if value else None
        flatten(data, section, row)
    row["energy.n_gpus"] = len(result.energy.per_gpu)
    env = result.environment
    row["environment.device"] = env.device
    row["environment.device_name"] = env.device_name
    row["environment.gpu_names"] = ", ".join(g.name or "?" for g in env.gpus) or None
    row["environment.engine_version"] = env.engine_version
    row["environment.torch_version"] = env.torch_version
    row["environment.driver_version"] = env.gpus[0].driver_version if env.gpus else None
    row["measurement_warnings"] = " | ".join(result.measurement_warnings) or None
    row["readings"] = readings(result)  # 'replayed' labels every figure of the row as not a measurement
    row["comparability_flags"] = " | ".join(run_flags(result)) or None
    flatten(result.config.model_dump(mode="json"), "config", row)
    return row


def run_rows(results: Iterable[ExperimentResult]) -> list[dict[str, Any]]:
    ordered = sorted(results, key=lambda r: (r.experiment_index, r.cycle, r.run_id))
    return [run_row(r) for r in ordered]


def summary_row(configuration: dict[str, Any]) -> dict[str, Any]:
    """Flatten one `configuration_stats` entry: `<metric>.mean`, `<metric>.ci95_low`, ..."""
    row: dict[str, Any] = {
        "config_hash": configuration["config_hash"],
        "config_summary": configuration["config_summary"],
        **({"gpu_set": configuration["gpu_set"]} if "gpu_set" in configuration else {}),
        "n_runs": configuration["n_runs"],
        "cycles": ",".join(str(c) for c in configuration["cycles"]),
        "flags": "; ".join(configuration["flags"]) or None,
        "readings": configuration.get("readings"),
        "flagged_runs": ",".join(configuration.get("flagged_runs") or []) or None,
        "excluded_runs": ",".join(configuration.get("excluded_runs") or {}) or None,
    }
    for metric, stats in configuration["metrics"].items():
        for key in ("n", "mean", "std", "ci95_low", "ci95_high", "ci95_half_width", "cv"):
            row[f"{metric}.{key}"] = stats.get(key)
    flatten(configuration["config"], "config", row)
    return row


def summary_rows(configurations: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [summary_row(c) for c in configurations]
