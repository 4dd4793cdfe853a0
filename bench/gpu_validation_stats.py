"""Pure figures of bench/gpu_validation.py, from the samples of one measured phase (no device needed).

A phase is anything with `t0`, `t1` (device seconds), `e0`, `e1` (energy counter at the edges, mJ,
or None) and `ticks` (sampler ticks, one GPU). Thresholds are those of docs/validation.md.

Verdicts that rest on a few noisy repetitions are judged on a 95 % interval, never on the point
estimate alone: PASS when the whole interval meets the threshold, FAIL when the whole interval misses
it, INCONCLUSIVE when it straddles it (the data cannot tell; more repetitions can). A point estimate
just under a threshold with 5 repetitions passes a configuration that is truly over it about a
fifth of the time; the interval makes that error rare (≤ 2.5 % at the boundary).
"""
from __future__ import annotations

import math
import statistics

COUNTER_VS_INSTANT_TOLERANCE = 0.05   # |instant-integral / counter - 1|
JPT_CV_MAX = 0.02                     # J/output token CV over the cycles of one configuration
SAMPLER_OVERHEAD_MAX_PCT = 0.5
CONFIDENCE = 0.95                     # every interval below is two-sided 95 %
MAX_N_TO_DECIDE = 500                 # "would need more than this" beyond it
PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"


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


def interval_verdict(low: float | None, high: float | None, limit: float, at_most: bool) -> str | None:
    """PASS / FAIL / INCONCLUSIVE of a quantity whose interval is [low, high] against `limit`.

    at_most=True: the quantity must be <= limit (a CV, an overhead); False: >= limit (a ratio).
    None when there is no interval (nothing to judge)."""
    if low is None or high is None:
        return None
    if at_most:
        return PASS if high <= limit else (FAIL if low > limit else INCONCLUSIVE)
    return PASS if low >= limit else (FAIL if high < limit else INCONCLUSIVE)


def cv_interval(cv: float, n: int, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Two-sided interval of the CV from n normal values: (n-1) s^2 / sigma^2 is chi-square with n-1
    degrees of freedom, so sigma lies in s * sqrt((n-1) / chi2_{upper, lower}); divided by the mean.

    The mean's own uncertainty (about CV/sqrt(n) relative) is ignored: at CVs of a few per cent it
    moves the bounds by far less than the chi-square factor does. None with n < 2."""
    if n < 2 or cv is None:
        return None
    from scipy.special import chdtri  # chdtri(df, p): x with P(chi2_df > x) = p

    tail = (1.0 - confidence) / 2.0
    df = n - 1
    return cv * math.sqrt(df / chdtri(df, tail)), cv * math.sqrt(df / chdtri(df, 1.0 - tail))


def cycles_to_decide(cv: float, limit: float = JPT_CV_MAX, confidence: float = CONFIDENCE) -> int | None:
    """The smallest n at which this CV, if it held, would give a decided verdict (its interval wholly
    under or over `limit`); None when even MAX_N_TO_DECIDE would not (CV at the limit)."""
    for n in range(2, MAX_N_TO_DECIDE + 1):
        low, high = cv_interval(cv, n, confidence)
        if high <= limit or low > limit:
            return n
    return None


def jpt_summary(values: list[float]) -> dict:
    """J/output token over the cycles of one configuration: mean, std, CV, 95 % CI of the mean (Student t),
    and the repeatability verdict on the CV's chi-square 95 % interval against JPT_CV_MAX.

    `n_to_decide`: with an INCONCLUSIVE verdict, how many cycles would decide it if the observed CV
    held (the figure to rerun with); null when decided or when no reasonable n would."""
    from llenergymeasure.results.stats import describe

    d = describe(values)
    bounds = cv_interval(d["cv"], d["n"]) if d["cv"] is not None else None
    verdict = interval_verdict(*(bounds or (None, None)), JPT_CV_MAX, at_most=True)
    return {"n": d["n"], "mean": d["mean"], "std": d["std"], "cv": d["cv"],
            "ci95": [d["ci95_low"], d["ci95_high"]] if d["ci95_low"] is not None else None,
            "cv_ci95": list(bounds) if bounds else None, "verdict": verdict,
            "n_to_decide": cycles_to_decide(d["cv"]) if verdict == INCONCLUSIVE else None}


def overhead_verdict(ratios: list[float]) -> dict:
    """Sampler overhead from on/off throughput ratios, on one statistic: the mean ratio and its 95 %
    Student-t interval. overhead = (1 - mean ratio) in %; PASS when the interval's worst end is within
    SAMPLER_OVERHEAD_MAX_PCT, FAIL when even its best end is over it, else INCONCLUSIVE (too noisy)."""
    n = len(ratios)
    mean = statistics.fmean(ratios)
    std = statistics.stdev(ratios) if n > 1 else None
    out = {"n_pairs": n, "ratio_mean": mean, "ratio_std": std, "overhead_pct": (1.0 - mean) * 100.0,
           "overhead_ci95_pct": None, "verdict": None}
    if std is None:
        return out
    from scipy.special import stdtrit

    half = float(stdtrit(n - 1, 0.5 + CONFIDENCE / 2.0)) * std / math.sqrt(n)
    low, high = (1.0 - mean - half) * 100.0, (1.0 - mean + half) * 100.0
    out.update(overhead_ci95_pct=[low, high],
               verdict=interval_verdict(low, high, SAMPLER_OVERHEAD_MAX_PCT, at_most=True))
    return out


def pytest_verdict(counts: dict) -> str | None:
    """`pytest -m gpu`: FAIL on any failure or error; PASS only when tests ran and none was skipped (a
    skipped GPU test proved nothing); INCONCLUSIVE when some or all were skipped. None without a report."""
    if not counts:
        return None
    if counts.get("failed") or counts.get("errors"):
        return FAIL
    if counts.get("skipped") or not counts.get("passed"):
        return INCONCLUSIVE
    return PASS
