"""Statistics across cycles, per configuration (runs sharing a `config_hash`).

For each metric in STAT_METRICS: n (runs that measured it), mean, sample std (ddof=1), a 95%
confidence interval for the mean with Student's t (n-1 degrees of freedom; the quantile from
scipy.special.stdtrit, which scipy.stats.t.ppf calls: importing scipy.stats took ~1 s of every
study's end on a loaded host) and the coefficient of variation std/|mean|. A configuration is flagged when it has fewer than
`min_runs` (3) runs; otherwise a metric is flagged when its own n (the runs that measured it) is
below `min_runs`; and per metric when CV exceeds `cv_threshold` (default 0.1): such figures
should not be published without more cycles. numpy/scipy are imported lazily.

Methods are never pooled: an energy figure measured with the counter, one integrated from instant
power and one from RAPL are different measurements (and adjusted figures subtract either the loaded
or the pre-load idle). When a configuration's runs measured a metric by more than one method, the
metric's statistics cover the most common method's runs only (`method`), every method's own
statistics are in `by_method`, and the configuration is flagged.

Runs that are not comparable with a clean measurement (comparability.py: replayed readings,
contention, warm-up not converged, a stall in the window) are flagged in their configuration, by
run id, wherever the statistics appear. Replayed readings are never pooled with measured ones: a
configuration with both has statistics over its measured runs, the replayed ones left out and
listed (`excluded_runs`). `exclude_flagged` leaves every flagged run out the same way.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

from ..domain import ExperimentResult
from .comparability import MEASURED, REPLAYED, readings, run_flags, short_flag
from .tables import run_row

DEFAULT_CV_THRESHOLD = 0.1
DEFAULT_MIN_RUNS = 3
CONFIDENCE = 0.95

# column name -> (unit, short label). The same names are columns of results.csv.
STAT_METRICS: dict[str, tuple[str, str]] = {
    "energy_per_output_token_j": ("J/output token", "energy/token"),
    "energy_per_output_token_adjusted_j": ("J/output token", "energy/token (adj.)"),
    "energy_per_request_j": ("J/request", "energy/request"),
    "energy_per_request_adjusted_j": ("J/request", "energy/request (adj.)"),
    "energy_wh_per_1000_requests": ("Wh/1000 requests", "Wh/1k req"),
    "energy_wh_per_1000_requests_adjusted": ("Wh/1000 requests", "Wh/1k req (adj.)"),
    "energy.gpu_energy_raw_j": ("J", "GPU energy"),
    "energy.gpu_energy_adjusted_j": ("J", "GPU energy (adj.)"),
    "energy.mean_power_w": ("W", "mean power"),
    "output_tokens_per_s": ("output tokens/s", "output tok/s"),
    "total_tokens_per_s": ("(input+output) tokens/s", "total tok/s"),
    "requests_per_s": ("requests/s", "req/s"),
    "ttft_s.p50": ("s", "TTFT p50"),
    "ttft_s.p90": ("s", "TTFT p90"),
    "ttft_s.p99": ("s", "TTFT p99"),
    "e2e_latency_s.p50": ("s", "e2e p50"),
    "e2e_latency_s.p90": ("s", "e2e p90"),
    "e2e_latency_s.p99": ("s", "e2e p99"),
    "tpot_s.p50": ("s/output token", "TPOT p50"),
    "itl_s.p50": ("s", "ITL p50"),
    "window_s": ("s", "window"),
    # Serving mode (null for offline runs: "not measured in any run").
    "tpot_s.p90": ("s/output token", "TPOT p90"),
    "tpot_s.p99": ("s/output token", "TPOT p99"),
    "itl_s.p90": ("s", "ITL p90"),
    "itl_s.p99": ("s", "ITL p99"),
    "serving.achieved_request_rate_per_s": ("requests/s", "achieved req/s"),
    "serving.goodput_requests_per_s": ("requests/s", "goodput req/s"),
    "serving.window.steady_state_share": ("fraction of run", "steady-state share"),
    "serving.n_errors": ("requests", "server errors"),
    # CPU package energy (RAPL, whole socket): never pooled with GPU energy.
    "cpu_energy.package_energy_per_output_token_j": ("J/output token (CPU package)", "CPU energy/token"),
}
# Where to find why a metric is missing, when no run measured it.
_REASON_COLUMNS = {"energy": "energy.unavailable_reason", "adjusted": "baseline.unavailable_reason",
                   "cpu_energy": "cpu_energy.unavailable_reason"}
_METHOD_PREFERENCE = ("counter", "integrated_instant_power", "rapl")


def metric_method(metric: str, row: dict[str, Any]) -> str | None:
    """How a run measured `metric`: the energy method (and, adjusted, the idle subtracted); None if not energy."""
    if metric.startswith("cpu_energy."):
        return row.get("cpu_energy.method")
    if not metric.startswith("energy"):
        return None
    method = row.get("energy.method")
    if "adjusted" in metric and method is not None:
        return f"{method}-{row.get('energy.baseline_subtracted') or 'pre_load_idle'}"
    return method


def _method_rank(key: str) -> tuple[int, str]:
    base = key.split("-")[0]
    return (_METHOD_PREFERENCE.index(base) if base in _METHOD_PREFERENCE else len(_METHOD_PREFERENCE), key)


def describe_by_method(metric: str, rows: list[dict[str, Any]], cv_threshold: float) -> dict[str, Any]:
    """`describe` over the runs of one method; with several, the most common (ties: counter first)."""
    groups: dict[str | None, list[float]] = {}
    for row in rows:
        value = row.get(metric)
        if value is not None:
            groups.setdefault(metric_method(metric, row), []).append(value)
    # Energy runs that measured nothing (method `unavailable`) are a group of their own: counted, never averaged.
    unmeasured = sum(1 for row in rows if row.get(metric) is None and metric_method(metric, row) is not None)
    if len(groups) <= 1:
        method = next(iter(groups), None)
        stats = describe(groups.get(method, []), cv_threshold)
        if method is not None:
            stats["method"] = method
    else:
        method = min(groups, key=lambda k: (-len(groups[k]), _method_rank(str(k))))
        stats = describe(groups[method], cv_threshold)
        stats["method"] = method
        stats["by_method"] = {str(k): describe(v, cv_threshold) for k, v in groups.items()}
        stats["mixed_methods"] = {str(k): len(v) for k, v in groups.items()}
    if unmeasured and groups:
        stats.setdefault("mixed_methods", {str(k): len(v) for k, v in groups.items()})["unavailable"] = unmeasured
    return stats


def describe(values: Iterable[float | None], cv_threshold: float = DEFAULT_CV_THRESHOLD,
             confidence: float = CONFIDENCE) -> dict[str, Any]:
    """n, mean, std (ddof=1), Student-t CI of the mean, CV, and whether CV exceeds the threshold."""
    import numpy as np
    from scipy.special import stdtrit

    clean = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    n = len(clean)
    out: dict[str, Any] = {"n": n, "mean": None, "std": None, "ci95_low": None, "ci95_high": None,
                           "ci95_half_width": None, "cv": None, "cv_exceeds_threshold": False}
    if n == 0:
        return out
    arr = np.asarray(clean, dtype=float)
    mean = float(arr.mean())
    out["mean"] = mean
    if n < 2:
        return out
    std = float(arr.std(ddof=1))
    half = float(stdtrit(n - 1, 0.5 + confidence / 2.0) * std / math.sqrt(n))
    out.update(std=std, ci95_low=mean - half, ci95_high=mean + half, ci95_half_width=half)
    if mean != 0.0:
        out["cv"] = std / abs(mean)
        out["cv_exceeds_threshold"] = out["cv"] > cv_threshold
    return out


def comparable_members(members: list[tuple[ExperimentResult, dict[str, Any]]], exclude_flagged: bool):
    """(the runs the statistics cover, {run_id: flags} of all runs, {run_id: why left out})."""
    flags = {r.run_id: run_flags(r) for r, _ in members}
    flags = {run_id: f for run_id, f in flags.items() if f}
    excluded: dict[str, str] = {}
    kinds = {readings(r) for r, _ in members}
    if REPLAYED in kinds and MEASURED in kinds:
        for r, _ in members:
            if readings(r) == REPLAYED:
                excluded[r.run_id] = "replayed readings: never pooled with measured ones"
    if exclude_flagged:
        for run_id, run_flag in flags.items():
            excluded.setdefault(run_id, "flagged, left out (--exclude-flagged): " + "; ".join(run_flag))
    return [(r, row) for r, row in members if r.run_id not in excluded], flags, excluded


def comparability_fields(used, flags: dict[str, list[str]], excluded: dict[str, str]) -> tuple[dict, list[str]]:
    """The configuration's comparability fields and its flag lines."""
    kinds = {readings(r) for r, _ in used} - {None}
    label = REPLAYED if kinds == {REPLAYED} else MEASURED if kinds == {MEASURED} else None
    flagged = [r.run_id for r, _ in used if r.run_id in flags]
    lines = []
    if label == REPLAYED:
        lines.append("REPLAYED readings: a recorded trace, not a measurement of this machine")
    if flagged:
        listed = "; ".join(f"{run_id} ({', '.join(short_flag(f) for f in flags[run_id])})" for run_id in flagged)
        lines.append(f"not comparable with a clean measurement, in these statistics: {listed}")
    if excluded:
        lines.append("left out of these statistics: " + "; ".join(f"{k} ({v})" for k, v in excluded.items()))
    return {"readings": label, "run_flags": flags, "flagged_runs": flagged, "excluded_runs": excluded}, lines


def configuration_stats(results: Iterable[ExperimentResult], cv_threshold: float = DEFAULT_CV_THRESHOLD,
                        min_runs: int = DEFAULT_MIN_RUNS, by_gpu: bool = False,
                        exclude_flagged: bool = False) -> list[dict[str, Any]]:
    """One JSON-ready dict per configuration, in the order configurations first appear in the study.

    `by_gpu`: one dict per (configuration, GPU set) instead, each with its `gpu_set` — the same
    configuration compared across the GPUs that ran it (parallel studies, Slurm).
    `exclude_flagged`: leave runs flagged as not comparable out of the statistics (listed).
    """
    groups: dict[tuple, list[tuple[ExperimentResult, dict[str, Any]]]] = {}
    for result in sorted(results, key=lambda r: (r.experiment_index, r.cycle, r.run_id)):
        row = run_row(result)
        key = (result.config_hash, row["gpu_set"]) if by_gpu else (result.config_hash,)
        groups.setdefault(key, []).append((result, row))
    out = []
    for key, all_members in groups.items():
        config_hash = key[0]
        first = all_members[0][0]
        members, run_flag_map, excluded = comparable_members(all_members, exclude_flagged)
        comparability, comparability_lines = comparability_fields(members, run_flag_map, excluded)
        rows = [row for _, row in members]
        metrics: dict[str, Any] = {}
        flags: list[str] = list(comparability_lines)
        if len(rows) < min_runs:
            flags.append(f"n={len(rows)} < {min_runs} runs: confidence interval unreliable")
        for metric, (unit, _label) in STAT_METRICS.items():
            stats = describe_by_method(metric, rows, cv_threshold)
            stats["unit"] = unit
            stats["few_runs"] = 0 < stats["n"] < min_runs
            if stats["n"] == 0:
                stats["unavailable_reason"] = _missing_reason(metric, rows)
            elif stats["few_runs"] and len(rows) >= min_runs:
                flags.append(f"{metric}: n={stats['n']} < {min_runs} runs measured it: confidence interval unreliable")
            if "mixed_methods" in stats:
                counts = ", ".join(f"{k}: {v}" for k, v in sorted(stats["mixed_methods"].items()))
                flags.append(f"{metric}: runs measured by different methods ({counts}); statistics over the "
                             f"{stats['method']} runs only, never pooled")
            if stats["cv_exceeds_threshold"]:
                flags.append(f"{metric}: CV {stats['cv']:.3f} > {cv_threshold:g}")
            metrics[metric] = stats
        out.append({
            "config_hash": config_hash,
            **({"gpu_set": key[1]} if by_gpu else {}),
            "config_summary": first.config.summary(),
            "config": first.config.model_dump(mode="json", exclude={"name"}),
            "n_runs": len(rows),
            "cycles": [r.cycle for r, _ in members],
            "run_ids": [r.run_id for r, _ in members],
            "cv_threshold": cv_threshold,
            "confidence": CONFIDENCE,
            "metrics": metrics,
            "flags": flags,
            "min_runs": min_runs,
            "few_runs": len(rows) < min_runs,
            "few_runs_metrics": [m for m, st in metrics.items() if st["few_runs"]],
            "mixed_method_metrics": [m for m, st in metrics.items() if "mixed_methods" in st],
            "high_cv_metrics": [m for m, st in metrics.items() if st["cv_exceeds_threshold"]],
            **comparability,
        })
    return out


def _missing_reason(metric: str, rows: list[dict[str, Any]]) -> str:
    """Why no run has `metric`: the energy reason, then (adjusted figures) the baseline reason."""
    columns = []
    if metric.startswith("cpu_energy."):
        columns.append(_REASON_COLUMNS["cpu_energy"])
    elif metric.startswith("energy"):
        columns.append(_REASON_COLUMNS["energy"])
        if "adjusted" in metric:
            columns.append(_REASON_COLUMNS["adjusted"])
    for column in columns:
        reasons = sorted({str(row[column]) for row in rows if row.get(column)})
        if reasons:
            return "; ".join(reasons)
    return "not measured in any run"


def metric_names() -> list[str]:
    return list(STAT_METRICS)


def check_metric(name: str) -> str:
    """Validate a metric name given on the command line (ConfigError lists the valid ones)."""
    from ..errors import ConfigError

    if name not in STAT_METRICS:
        import difflib

        close = difflib.get_close_matches(name, list(STAT_METRICS), n=1)
        hint = f" — did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown metric '{name}'{hint}. Valid metrics: {', '.join(STAT_METRICS)}")
    return name
