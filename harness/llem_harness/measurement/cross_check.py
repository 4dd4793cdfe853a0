"""Cross-check inside every run: the counter's window energy beside the integral of sampled instant power.

Why: the window energy is the counter's difference (energy.py), a single reading per edge that
nothing else in the run checks. The sampler already records instant power across the same window;
its trapezoid is a second, independent path through the board's sensor. Where the two disagree by
more than the sampling can explain, something is wrong with one of them (a counter that stalls or
skips, lost samples, a window too short for its sampling) and the run says so
(`energy.cross_check.flagged`, and a warning). Where they agree, they agree with each other: both come
from the same sensor, so agreement is consistency, not accuracy (docs/methodology.md, "Cross-check
inside every run"); only an external meter (`external.py`) tests accuracy.

The tolerance: BASE_TOLERANCE (the two readings take different firmware paths: the validation's
counter-vs-instant threshold) plus what sampling alone can misplace: at each of the two edges, up
to one period at the window's peak power, where the period is the longest of the sample period,
the observed update intervals of the instant power and of the counter, and the model's published
update period. Relative to the counter energy, that term shrinks as the window grows. A window
with no periodic sample (shorter than one sampling period: only its edges' own samples) has no
period to bound that term by: it is not compared, and says so, rather than judged against the base
tolerance alone.

Published sensor figures (SENSORS) are recorded where known for the GPU model: on A100 and H100 the
instant reading is the mean over 25 ms of each 100 ms update period (Yang et al., "Part-time Power
Measurements: nvidia-smi's Lack of Attention", SC'24, arXiv 2312.02741), so power in the other 75 %
of each period is never seen by it. Other models: null (not known to llem), never guessed.
"""
from __future__ import annotations

import re
import statistics

from llenergymeasure.domain.energy_check import EnergyCrossCheck, GpuCrossCheck

from .devices import EnergyReading, GpuDevice
from .energy import instant_power_points, integrate_power_j
from .sampler import Tick

BASE_TOLERANCE = 0.05
PART_TIME_SOURCE = ("Yang et al., 'Part-time Power Measurements: nvidia-smi's Lack of Attention', SC'24 "
                    "(arXiv 2312.02741)")
# GPU name pattern -> (published power update period ms, share of each period the sensor averages over)
SENSORS: tuple[tuple[str, float, float, str], ...] = (
    (r"\bA100\b", 100.0, 0.25, PART_TIME_SOURCE),
    (r"\bH100\b", 100.0, 0.25, PART_TIME_SOURCE),
)


def published_sensor(name: str | None) -> tuple[float | None, float | None, str | None]:
    """(update period ms, averaging share, source) published for this GPU model, or Nones."""
    for pattern, period_ms, share, source in SENSORS:
        if name and re.search(pattern, name):
            return period_ms, share, source
    return None, None, None


def _median_gap_ms(times: list[float]) -> float | None:
    gaps = [(b - a) * 1000.0 for a, b in zip(times, times[1:]) if b > a]
    return statistics.median(gaps) if gaps else None


def _change_interval_ms(ticks: list[Tick], pos: int, quantity: str) -> float | None:
    """Median interval between changes of one reading over the periodic samples (what the device updates)."""
    pts = [(tk.t_s, getattr(tk.samples[pos], quantity)) for tk in ticks
           if not tk.forced and getattr(tk.samples[pos], quantity) is not None]
    return _median_gap_ms([t for (t, v), (_, prev) in zip(pts[1:], pts) if v != prev])


def gpu_cross_check(dev: GpuDevice, pos: int, start: EnergyReading, end: EnergyReading, ticks: list[Tick],
                    t0: float, t1: float, gpu_name: str | None) -> GpuCrossCheck:
    points = [(t, w) for t, w in instant_power_points(ticks, pos) if t0 <= t <= t1]
    period_ms, share, source = published_sensor(gpu_name)
    check = GpuCrossCheck(
        gpu_uuid=dev.uuid, gpu_index=dev.index, n_samples=len(points),
        sample_period_ms=_median_gap_ms([tk.t_s for tk in ticks if not tk.forced]),
        power_change_interval_ms=_change_interval_ms(ticks, pos, "power_instant_w"),
        counter_change_interval_ms=_change_interval_ms(ticks, pos, "energy_mj"),
        power_update_period_ms=period_ms, sensor_averaging_share=share, sensor_source=source)
    if start.energy_mj is not None and end.energy_mj is not None and end.energy_mj > start.energy_mj:
        check.counter_energy_j = (end.energy_mj - start.energy_mj) / 1000.0
    check.instant_integral_j = integrate_power_j(points, t0, t1) if len(points) >= 2 else None
    if check.counter_energy_j is None:
        why = start.unavailable_reason or end.unavailable_reason or (
            f"the counter did not advance ({start.energy_mj} -> {end.energy_mj} mJ)")
        check.unavailable_reason = f"no counter energy for this window: {why}"
        return check
    if check.instant_integral_j is None:
        check.unavailable_reason = f"{len(points)} instant-power sample(s) in the window: nothing to integrate"
        return check
    if check.sample_period_ms is None:  # only the edges' own samples: no period to bound the sampling's error by
        check.unavailable_reason = (f"{len(points)} instant-power sample(s) in the window, none of them periodic: "
                                    "what the sampling misplaces cannot be bounded, so the two are not compared")
        check.instant_integral_j = None
        return check
    longest_ms = max(x for x in (check.sample_period_ms, check.power_change_interval_ms,
                                 check.counter_change_interval_ms, period_ms, 0.0) if x is not None)
    peak_w = max(w for _, w in points)
    check.ratio = check.instant_integral_j / check.counter_energy_j
    check.tolerance = BASE_TOLERANCE + 2.0 * peak_w * longest_ms / 1000.0 / check.counter_energy_j
    check.flagged = abs(check.ratio - 1.0) > check.tolerance
    return check


def cross_check(devices: list[GpuDevice], start: list[EnergyReading], end: list[EnergyReading],
                ticks: list[Tick], t0: float, t1: float,
                gpu_names: dict[str, str | None] | None = None) -> tuple[EnergyCrossCheck, list[str]]:
    """The run's cross-check and the warnings it raises (one per flagged GPU)."""
    if not devices or not ticks:
        return EnergyCrossCheck(unavailable_reason="no power timeline in the window"), []
    names = gpu_names or {}
    per_gpu = [gpu_cross_check(dev, pos, start[pos], end[pos], ticks, t0, t1, names.get(dev.uuid))
               for pos, dev in enumerate(devices)]
    compared = [g for g in per_gpu if g.ratio is not None]
    warnings = [f"GPU {g.gpu_index}: energy counter {g.counter_energy_j:.1f} J and integrated instant power "
                f"{g.instant_integral_j:.1f} J disagree by {abs(g.ratio - 1) * 100:.1f} % over the window, beyond the "
                f"{g.tolerance * 100:.1f} % its sampling explains ({g.n_samples} samples): one of the two readings "
                "is wrong (energy.cross_check; docs/methodology.md)" for g in compared if g.flagged]
    if not compared:
        return EnergyCrossCheck(unavailable_reason="; ".join(f"GPU {g.gpu_index}: {g.unavailable_reason}"
                                                             for g in per_gpu), per_gpu=per_gpu), warnings
    ratio = (sum(g.instant_integral_j for g in compared) / sum(g.counter_energy_j for g in compared))
    return EnergyCrossCheck(method="counter_vs_instant_trapezoid", ratio=ratio,
                            flagged=any(g.flagged for g in compared), base_tolerance=BASE_TOLERANCE,
                            per_gpu=per_gpu), warnings
