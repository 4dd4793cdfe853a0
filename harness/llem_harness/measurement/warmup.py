"""Warm-up until per-batch latency settles (docs/methodology.md, "Warm-up").

Converged when the coefficient of variation (population std / mean) of the last `window` batch
latencies is under `cv_threshold`, checked once at least max(min_batches, window) batches ran.
Two bounds stop it without converging, whichever comes first: `max_batches`, and `max_duration_s`
of warm-up time (checked after each batch, so the batch in progress finishes). Why the time bound:
on a loaded host 30 batches of a slow configuration took minutes and still did not settle. Either
way the result says which bound stopped it (`stopped_by`, converged=False) and a warning is
raised — a run that was not warm is never passed off as one. Defaults (WarmupConfig): min 2,
max 30, window 5, threshold 5 %, 60 s.
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
    stopped_by = "max_batches"
    while len(latencies) < cfg.max_batches:
        latencies.append(float(run_batch()))
        if emit is not None:
            emit("batch", stage="warmup", done=len(latencies), total=cfg.max_batches)
        if len(latencies) >= max(cfg.min_batches, cfg.window):
            cv = coefficient_of_variation(latencies[-cfg.window:])
            if cv < cfg.cv_threshold:
                stopped_by = "converged"
                break
        if cfg.max_duration_s is not None and time.monotonic() - t0 >= cfg.max_duration_s:
            stopped_by = "max_duration_s" if len(latencies) < cfg.max_batches else "max_batches"
            break
    duration_s = time.monotonic() - t0
    warnings: list[str] = []
    if stopped_by != "converged":
        shown = "n/a (fewer batches than the window)" if cv is None else f"{cv:.3f}"
        bound = (f"max_duration_s {cfg.max_duration_s:g} s reached" if stopped_by == "max_duration_s"
                 else f"max_batches {cfg.max_batches} reached")
        warnings.append(f"warm-up did not converge: CV {shown} >= {cfg.cv_threshold} after {len(latencies)} "
                        f"batches in {duration_s:.1f} s ({bound}); the window may start before batch times "
                        "settle: raise measurement.warmup.max_batches (or cv_threshold on a noisy, shared host)")
    return WarmupResult(iterations=len(latencies), converged=stopped_by == "converged", final_cv=cv,
                        cv_threshold=cfg.cv_threshold, latencies_s=latencies, duration_s=duration_s,
                        stopped_by=stopped_by, max_duration_s=cfg.max_duration_s), warnings
