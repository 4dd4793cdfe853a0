"""Idle power of the assigned GPUs: before the model loads, and again once it is loaded.

Two idle windows (docs/energy-window.md; docs/methodology.md, "Idle baseline"), each a named window
(windows.py): `pre_load_idle` (no CUDA context yet) and `loaded_idle` (model resident, engine idle,
before warm-up). The result keeps its older names: `baseline` is the pre-load idle, `loaded_idle`
the loaded one, `energy.baseline_power_w` the idle power subtracted. A loaded GPU idles higher, so
`energy_adjusted_j` subtracts the loaded idle when it was measured. Temperature gate: an idle
window whose own per-GPU temperature range exceeds TEMPERATURE_TOLERANCE_C (the GPU is still
cooling or heating, so its idle power drifts) is measured again, for at most TEMPERATURE_MAX_WAIT_S
in all; if it never settles, the last one is kept with `temperature_settled=False` and a warning.

Mean: from the energy-counter delta over the window when every GPU has a counter, so that
`energy_adjusted_j = raw - baseline_power_w * window_s` subtracts a figure measured the same way
as the run window (method `counter_delta`); otherwise the mean of summed instant-power samples
(`instant_power_samples`). Std and n always come from the instant-power samples (the spread a
reader needs to judge the subtraction). Reuse: a pre-load idle measured earlier in the study on the
same GPU UUIDs is reused while younger than `reuse_ttl_s` (`fresh=False`, `age_s`), re-measured when stale.
"""
from __future__ import annotations

import statistics
import threading
from datetime import datetime, timezone

from llenergymeasure.domain import BaselineResult

from .devices import DeviceBackend, GpuDevice
from .sampler import Sampler
from .windows import Windows


def _parse_iso(text: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def try_reuse(previous: BaselineResult | None, gpu_uuids: list[str], ttl_s: float,
              now: datetime | None = None) -> tuple[BaselineResult | None, str]:
    """The previous baseline marked reused (fresh=False, age_s), or None and why it was not reused."""
    if previous is None:
        return None, "no earlier baseline"
    if ttl_s <= 0:
        return None, "reuse disabled (reuse_ttl_s = 0)"
    if previous.method == "unavailable" or previous.power_mean_w is None:
        return None, "earlier baseline has no measured power"
    if set(previous.gpu_uuids) != set(gpu_uuids):
        return None, f"earlier baseline was on other GPUs ({previous.gpu_uuids})"
    measured = _parse_iso(previous.measured_at or "")
    if measured is None:
        return None, "earlier baseline has no measurement time"
    age_s = ((now or datetime.now(timezone.utc)) - measured).total_seconds()
    if age_s < 0 or age_s > ttl_s:
        return None, f"earlier baseline is stale (age {age_s:.0f} s > ttl {ttl_s:.0f} s)"
    return previous.model_copy(update={"fresh": False, "age_s": age_s}), f"reused (age {age_s:.0f} s)"


TEMPERATURE_TOLERANCE_C = 1.0   # NVML reports whole degrees: a range of 1 is flicker, 2 a trend
TEMPERATURE_MAX_WAIT_S = 60.0   # bound on re-measuring a drifting baseline


def measure_idle_gated(backend: DeviceBackend, devices: list[GpuDevice], duration_s: float, period_ms: float,
                  kind: str = "pre_load", max_wait_s: float = TEMPERATURE_MAX_WAIT_S) -> tuple[BaselineResult, list[str]]:
    """An idle window measured again until its temperature range is within tolerance (bounded wait:
    `baseline.temperature_max_wait_s`; 0 measures once)."""
    tolerance_c = TEMPERATURE_TOLERANCE_C
    t_start = backend.clock()
    while True:
        result, warnings = measure_idle_window(backend, devices, duration_s, period_ms, name=f"{kind}_idle")
        drift = result.temperature_drift_c
        waited_s = max(0.0, backend.clock() - t_start - result.duration_s)
        settled = None if drift is None else drift <= tolerance_c
        if settled is not False or backend.clock() - t_start + duration_s > max_wait_s:
            break
    result = result.model_copy(update={"kind": kind, "temperature_settled": settled, "temperature_wait_s": waited_s})
    label = "loaded idle" if kind == "loaded" else "pre-load idle"
    if settled is False:
        warnings.append(f"{label} baseline: GPU temperature still moving ({drift:.0f} °C range > "
                        f"{tolerance_c:g} °C) after {waited_s:.0f} s of waiting; idle power may be off")
    return result, warnings


def measure_idle_window(backend: DeviceBackend, devices: list[GpuDevice], duration_s: float,
                     period_ms: float, name: str = "idle") -> tuple[BaselineResult, list[str]]:
    """Idle power over one named window of `duration_s` (the engine does nothing meanwhile)."""
    uuids = [d.uuid for d in devices]
    measured_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if not devices:
        return BaselineResult(method="unavailable", unavailable_reason="no GPU assigned", gpu_uuids=uuids), []
    windows = Windows(backend.clock, devices, Sampler(backend, devices, period_ms))
    windows.begin_window(name)
    backend.wait(threading.Event(), duration_s)
    window = windows.end_window(name)
    start_e, end_e = window.readings(devices)
    t0, t1 = window.start.clock_s, window.end.clock_s
    ticks = [tk for tk in windows.ticks(window) if not tk.forced]  # the edges' own samples are not idle statistics
    warnings = [f"baseline sampler error: {e}" for e in windows.errors(window)]

    sums = [sum(s.power_instant_w for s in tk.samples) for tk in ticks
            if all(s.power_instant_w is not None for s in tk.samples)]
    temps: dict[str, float] = {}
    ranges: list[float] = []
    for pos, dev in enumerate(devices):
        vals = [tk.samples[pos].temperature_c for tk in ticks if tk.samples[pos].temperature_c is not None]
        if vals:
            temps[dev.uuid] = statistics.fmean(vals)
            ranges.append(max(vals) - min(vals))
    common = dict(n_samples=len(sums), duration_s=t1 - t0, gpu_uuids=uuids, measured_at=measured_at, fresh=True,
                  age_s=0.0, idle_temperature_c=max(temps.values()) if temps else None,
                  idle_temperature_per_gpu_c=temps, temperature_drift_c=max(ranges) if ranges else None,
                  power_std_w=statistics.stdev(sums) if len(sums) >= 2 else None)
    deltas = [(e.energy_mj - s.energy_mj) if s.energy_mj is not None and e.energy_mj is not None else None
              for s, e in zip(start_e, end_e)]
    common["idle_power_per_gpu_w"] = _per_gpu_power(devices, deltas, ticks, t1 - t0)
    if all(d is not None and d >= 0 for d in deltas) and t1 > t0:
        return BaselineResult(method="counter_delta", power_mean_w=sum(deltas) / 1000.0 / (t1 - t0),
                              **common), warnings
    if any(d is not None and d < 0 for d in deltas):
        warnings.append("baseline: energy counter went backwards (driver reload?); counter delta discarded")
    if len(sums) >= 2:
        return BaselineResult(method="instant_power_samples", power_mean_w=statistics.fmean(sums), **common), warnings
    reason = "neither the energy counter nor instant power could be read during the baseline"
    warnings.append(f"baseline unavailable: {reason}")
    return BaselineResult(method="unavailable", unavailable_reason=reason,
                          **{**common, "power_std_w": None}), warnings


def _per_gpu_power(devices: list[GpuDevice], deltas: list, ticks, duration_s: float) -> dict[str, float]:
    """Each GPU's mean idle power: its counter delta, else the mean of its instant-power samples."""
    out: dict[str, float] = {}
    for pos, dev in enumerate(devices):
        if deltas[pos] is not None and deltas[pos] >= 0 and duration_s > 0:
            out[dev.uuid] = deltas[pos] / 1000.0 / duration_s
            continue
        vals = [tk.samples[pos].power_instant_w for tk in ticks if tk.samples[pos].power_instant_w is not None]
        if vals:
            out[dev.uuid] = statistics.fmean(vals)
    return out
