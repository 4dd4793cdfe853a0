"""Window energy per GPU: the counter first, integrated instant power as the fallback.

Rules (docs/methodology.md, "Energy source and window"): energy = counter(end) - counter(start) per GPU, mapped by
UUID; a negative delta means the driver reloaded, so that delta is discarded with a warning —
never clamped — and the GPU falls back to integrating its instant-power samples if it has them.
A zero delta while the power samples show the GPU drawing power is treated the same way: the window
was shorter than the counter's update period, and 0 J would be a made-up reading.
Only `power_instant_w` is ever integrated (the averaged power is a 1 s running mean). A total is
reported only when every GPU has a measured value: a partial sum would understate the energy.
"""
from __future__ import annotations

import bisect

from llenergymeasure.domain import BaselineResult, EnergyResult, GpuEnergy

from .devices import EnergyReading, GpuDevice
from .sampler import Tick

_METHOD_RANK = {"counter": 0, "integrated_instant_power": 1}


def integrate_power_j(points: list[tuple[float, float]], t0: float, t1: float) -> float | None:
    """Trapezoidal integral of power (W) over [t0, t1] in joules.

    Points are (t_s, watts), any order. Between samples power is linear; before the first and after
    the last sample inside the interval the nearest sample's value is held. None with < 2 points.
    """
    pts = sorted(p for p in points if p[1] is not None)
    if len(pts) < 2 or t1 <= t0:
        return None if len(pts) < 2 else 0.0

    times = [t for t, _ in pts]

    def power_at(t: float) -> float:
        i = bisect.bisect_right(times, t)
        if i == 0:
            return pts[0][1]
        if i == len(pts):
            return pts[-1][1]
        (ta, wa), (tb, wb) = pts[i - 1], pts[i]
        return wa if tb == ta else wa + (wb - wa) * (t - ta) / (tb - ta)

    inner = [(t, w) for t, w in pts if t0 < t < t1]
    knots = [t0] + [t for t, _ in inner] + [t1]
    values = [power_at(t0)] + [w for _, w in inner] + [power_at(t1)]
    return sum((b - a) * (va + vb) / 2.0 for a, b, va, vb in zip(knots, knots[1:], values, values[1:]))


def instant_power_points(ticks: list[Tick], position: int) -> list[tuple[float, float]]:
    return [(tk.t_s, tk.samples[position].power_instant_w) for tk in ticks
            if tk.samples[position].power_instant_w is not None]


def gpu_window_energy(dev: GpuDevice, position: int, start: EnergyReading, end: EnergyReading,
                      ticks: list[Tick], t0: float, t1: float) -> tuple[GpuEnergy, list[str]]:
    warnings: list[str] = []
    reason = start.unavailable_reason or end.unavailable_reason
    if start.energy_mj is not None and end.energy_mj is not None:
        delta_mj = end.energy_mj - start.energy_mj
        drew_power = any(w > 0 for _, w in instant_power_points(ticks, position))
        if delta_mj > 0 or (delta_mj == 0 and not drew_power):
            return GpuEnergy(gpu_uuid=dev.uuid, gpu_index=dev.index, energy_j=delta_mj / 1000.0,
                             method="counter"), warnings
        if delta_mj == 0:  # a window shorter than the counter's update period: 0 J is not a reading
            reason = (f"energy counter did not advance over the {t1 - t0:.3f} s window although the GPU drew "
                      "power (window shorter than the counter's update period)")
        else:
            reason = (f"energy counter went backwards ({start.energy_mj} -> {end.energy_mj} mJ; driver reload?); "
                      "delta discarded")
        warnings.append(f"GPU {dev.index} ({dev.uuid}): {reason}")
    integrated = integrate_power_j(instant_power_points(ticks, position), t0, t1)
    if integrated is not None:
        warnings.append(f"GPU {dev.index}: energy integrated from instant-power samples ({reason})")
        return GpuEnergy(gpu_uuid=dev.uuid, gpu_index=dev.index, energy_j=integrated,
                         method="integrated_instant_power"), warnings
    reason = f"{reason}; no instant-power samples to integrate"
    return GpuEnergy(gpu_uuid=dev.uuid, gpu_index=dev.index, method="unavailable",
                     unavailable_reason=reason), warnings


def window_energy(devices: list[GpuDevice], start: list[EnergyReading], end: list[EnergyReading],
                  ticks: list[Tick], t0: float, t1: float,
                  baseline: BaselineResult | None) -> tuple[EnergyResult, list[str]]:
    window_s = t1 - t0
    warnings: list[str] = []
    per_gpu: list[GpuEnergy] = []
    for pos, dev in enumerate(devices):
        gpu, notes = gpu_window_energy(dev, pos, start[pos], end[pos], ticks, t0, t1)
        per_gpu.append(gpu)
        warnings.extend(notes)
    missing = [g for g in per_gpu if g.energy_j is None]
    if not per_gpu or missing:
        reason = "; ".join(f"GPU {g.gpu_index}: {g.unavailable_reason}" for g in missing) or "no GPU assigned"
        warnings.append(f"GPU energy unavailable: {reason}")
        return EnergyResult(method="unavailable", unavailable_reason=reason, per_gpu=per_gpu,
                            window_s=window_s), warnings
    methods = {g.method for g in per_gpu}
    method = max(methods, key=lambda m: _METHOD_RANK[m])
    if len(methods) > 1:
        warnings.append(f"GPU energy methods differ across GPUs ({sorted(methods)}); total labelled {method}")
    raw_j = sum(g.energy_j for g in per_gpu)
    adjusted_j = None
    if baseline is not None and baseline.power_mean_w is not None:
        if set(baseline.gpu_uuids) == {d.uuid for d in devices}:
            adjusted_j = raw_j - baseline.power_mean_w * window_s
        else:
            warnings.append("baseline was measured on other GPUs; adjusted energy not computed")
    return EnergyResult(method=method, gpu_energy_raw_j=raw_j, gpu_energy_adjusted_j=adjusted_j, per_gpu=per_gpu,
                        window_s=window_s, mean_power_w=raw_j / window_s if window_s > 0 else None), warnings
