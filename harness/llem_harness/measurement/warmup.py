"""Warm-up until per-batch latency settles (docs/methodology.md, "Warm-up").

Converged when the coefficient of variation (population std / mean) of the last `window` batch
latencies is under `cv_threshold`, checked once at least max(min_batches, window) batches ran;
stops at `max_batches` regardless and then reports converged=False with a warning. Defaults
(WarmupConfig): min 2, max 30, window 5, threshold 5 %.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable

from llenergymeasure.domain import WarmupConfig, WarmupResult


def coefficient_of_variation(values: list[float]) -> float:
    mean = statistics.fmean(values)
    return statistics.pstdev(values) / mean if mean > 0 else float("inf")


def run_warmup(cfg: WarmupConfig, run_batch: Callable[[], float],
               emit: Callable[..., None] | None = None) -> tuple[WarmupResult, list[str]]:
    if not cfg.enabled:
        return WarmupResult(enabled=False), []
    t0 = time.monotonic()
    latencies: list[float] = []
    cv: float | None = None
    converged = False
    while len(latencies) < cfg.max_batches:
        latencies.append(float(run_batch()))
        if emit is not None:
            emit("batch", phase="warmup", done=len(latencies), total=cfg.max_batches)
        if len(latencies) >= max(cfg.min_batches, cfg.window):
            cv = coefficient_of_variation(latencies[-cfg.window:])
            if cv < cfg.cv_threshold:
                converged = True
                break
    warnings: list[str] = []
    if not converged:
        shown = "n/a (fewer batches than the window)" if cv is None else f"{cv:.3f}"
        warnings.append(f"warm-up did not converge: CV {shown} >= {cfg.cv_threshold} after {len(latencies)} "
                        f"batches (max {cfg.max_batches})")
    return WarmupResult(iterations=len(latencies), converged=converged, final_cv=cv, cv_threshold=cfg.cv_threshold,
                        latencies_s=latencies, duration_s=time.monotonic() - t0), warnings
