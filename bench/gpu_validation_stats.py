"""Pure figures of bench/gpu_validation.py, from the samples of one measured phase (no device needed).

A phase is anything with `t0`, `t1` (device seconds), `e0`, `e1` (energy counter at the edges, mJ,
or None) and `ticks` (sampler ticks, one GPU). Thresholds are those of docs/validation.md.
"""
from __future__ import annotations

import statistics

COUNTER_VS_INSTANT_TOLERANCE = 0.05   # |instant-integral / counter - 1|
JPT_CV_MAX = 0.02                     # J/output token CV over the cycles of one configuration
SAMPLER_OVERHEAD_MAX_PCT = 0.5


def _values(phase, quantity: str) -> list[tuple[float, float]]:
    return [(tk.t_s, getattr(tk.samples[0], quantity)) for tk in phase.ticks
            if not tk.forced and getattr(tk.samples[0], quantity) is not None]


def _mean_std(values: list[float]) -> dict:
    if not values:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values)}


def idle_stats(phase) -> dict:
    """Mean ± std of instant and averaged power, and the counter's mean power, over the phase."""
    duration = phase.t1 - phase.t0
    counter_w = ((phase.e1 - phase.e0) / 1000.0 / duration
                 if phase.e0 is not None and phase.e1 is not None and duration > 0 else None)
    temps = [v for _, v in _values(phase, "temperature_c")]
    return {"duration_s": duration, "power_instant_w": _mean_std([v for _, v in _values(phase, "power_instant_w")]),
            "power_avg_w": _mean_std([v for _, v in _values(phase, "power_avg_w")]),
            "counter_mean_power_w": counter_w, "temperature_c_mean": statistics.fmean(temps) if temps else None}


def agreement(phase) -> dict:
    """One window, three energies: counter difference, trapezoid of instant power, of 1-s average.

    Only the counter and the instant power are measurements of energy; the averaged power is a
    running mean, integrated here only to show how far it is from the other two.
    """
    from llem_harness.measurement.energy import integrate_power_j

    counter_j = (phase.e1 - phase.e0) / 1000.0 if phase.e0 is not None and phase.e1 is not None else None
    instant_j = integrate_power_j(_values(phase, "power_instant_w"), phase.t0, phase.t1)
    avg_j = integrate_power_j(_values(phase, "power_avg_w"), phase.t0, phase.t1)

    def ratio(x):
        return x / counter_j if x is not None and counter_j else None

    r_instant = ratio(instant_j)
    return {"window_s": phase.t1 - phase.t0, "counter_j": counter_j, "instant_trapezoid_j": instant_j,
            "avg_trapezoid_j": avg_j, "instant_over_counter": r_instant, "avg_over_counter": ratio(avg_j),
            "pass": (abs(r_instant - 1.0) <= COUNTER_VS_INSTANT_TOLERANCE) if r_instant is not None else None}


def update_periods(phase) -> dict:
    """How often each quantity actually changes (median interval between changes, ms), and the
    counter's smallest step: what replay tests need to imitate a real device."""
    out = {}
    for q in ("energy_mj", "power_instant_w", "power_avg_w"):
        pts = _values(phase, q)
        changes = [t for (t, v), (_, prev) in zip(pts[1:], pts) if v != prev]
        gaps = [(b - a) * 1000.0 for a, b in zip(changes, changes[1:])]
        out[q] = {"median_change_interval_ms": statistics.median(gaps) if gaps else None, "n_changes": len(changes)}
    steps = [b - a for (_, a), (_, b) in zip(_values(phase, "energy_mj"), _values(phase, "energy_mj")[1:]) if b > a]
    out["energy_mj"]["smallest_step_mj"] = min(steps) if steps else None
    return out


def cooldown_time(phase, target_c: float | None, max_s: float) -> dict:
    """Seconds from the end of the load until temperature first reaches target_c (None if not reached)."""
    temps = _values(phase, "temperature_c")
    reached = next((t - phase.t0 for t, v in temps if target_c is not None and v <= target_c), None)
    return {"target_c": target_c, "start_c": temps[0][1] if temps else None, "end_c": temps[-1][1] if temps else None,
            "time_to_idle_s": reached, "max_s": max_s, "reached": reached is not None}


def jpt_summary(values: list[float]) -> dict:
    """J/output token over the cycles of one configuration: mean, std, CV, 95 % CI (Student t)."""
    from llenergymeasure.results.stats import describe

    d = describe(values)
    return {"n": d["n"], "mean": d["mean"], "std": d["std"], "cv": d["cv"],
            "ci95": [d["ci95_low"], d["ci95_high"]] if d["ci95_low"] is not None else None,
            "pass": (d["cv"] <= JPT_CV_MAX) if d["cv"] is not None else None}


def overhead_verdict(ratios: list[float]) -> dict:
    """Sampler overhead from on/off throughput ratios: (1 - median) in %, and a verdict only when the
    pairs are precise enough to decide (standard error of the ratio <= the threshold); else None."""
    median = statistics.median(ratios)
    std = statistics.stdev(ratios) if len(ratios) > 1 else None
    se_pct = std / len(ratios) ** 0.5 * 100.0 if std is not None else None
    overhead = (1.0 - median) * 100.0
    decidable = se_pct is not None and se_pct <= SAMPLER_OVERHEAD_MAX_PCT
    return {"ratio_median": median, "ratio_std": std, "overhead_pct": overhead, "standard_error_pct": se_pct,
            "pass": (overhead <= SAMPLER_OVERHEAD_MAX_PCT) if decidable else None}
