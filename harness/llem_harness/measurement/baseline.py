"""Idle baseline: power of the assigned GPUs before the model loads (docs/methodology.md, "Idle baseline").

Mean: from the energy-counter delta over the baseline when every GPU has a counter, so that
`energy_adjusted_j = raw - baseline_power_w * window_s` subtracts a figure measured the same way
as the window (method `counter_delta`); otherwise the mean of summed instant-power samples
(`instant_power_samples`). Std and n always come from the instant-power samples (the spread a
reader needs to judge the subtraction). Reuse: a baseline measured earlier in the study on the same
GPU UUIDs is reused while younger than `reuse_ttl_s` (`fresh=False`, `age_s`), re-measured when stale.
"""
from __future__ import annotations

import statistics
import threading
from datetime import datetime, timezone

from llenergymeasure.domain import BaselineResult

from .devices import DeviceBackend, GpuDevice
from .sampler import Sampler


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


def measure_baseline(backend: DeviceBackend, devices: list[GpuDevice], duration_s: float,
                     period_ms: float) -> tuple[BaselineResult, list[str]]:
    uuids = [d.uuid for d in devices]
    measured_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if not devices:
        return BaselineResult(method="unavailable", unavailable_reason="no GPU assigned", gpu_uuids=uuids), []
    sampler = Sampler(backend, devices, period_ms)
    start_e = [d.read_energy() for d in devices]
    t0 = backend.clock()
    sampler.start()
    backend.wait(threading.Event(), duration_s)
    sampler.stop()
    end_e = [d.read_energy() for d in devices]
    t1 = backend.clock()
    ticks = sampler.snapshot()
    warnings = [f"baseline sampler error: {e}" for e in sampler.errors]

    sums = [sum(s.power_instant_w for s in tk.samples) for tk in ticks
            if all(s.power_instant_w is not None for s in tk.samples)]
    temps: dict[str, float] = {}
    for pos, dev in enumerate(devices):
        vals = [tk.samples[pos].temperature_c for tk in ticks if tk.samples[pos].temperature_c is not None]
        if vals:
            temps[dev.uuid] = statistics.fmean(vals)
    common = dict(n_samples=len(sums), duration_s=t1 - t0, gpu_uuids=uuids, measured_at=measured_at, fresh=True,
                  age_s=0.0, idle_temperature_c=max(temps.values()) if temps else None,
                  idle_temperature_per_gpu_c=temps,
                  power_std_w=statistics.stdev(sums) if len(sums) >= 2 else None)
    deltas = [(e.energy_mj - s.energy_mj) if s.energy_mj is not None and e.energy_mj is not None else None
              for s, e in zip(start_e, end_e)]
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
