"""Throttle detection from the sampled clocks-event-reasons bitmask (NVML "throttle reasons").

Durations are sampled: each sample's reasons are credited with the time until the next sample
(the last one with the median period), per GPU; the summary keeps, per reason, the longest
duration seen on any GPU. Only reasons that limit performance make `occurred` true and raise a
warning; informational ones (GPU idle, application clocks, sync boost, display) are reported
separately in `other_events_s`.
"""
from __future__ import annotations

import statistics

from llenergymeasure.domain import ThrottleSummary

from .sampler import Tick

# NVML nvmlClocksEventReason* bits (stable across driver versions).
LIMITING_REASONS = {0x4: "sw_power_cap", 0x8: "hw_slowdown", 0x20: "sw_thermal_slowdown",
                    0x40: "hw_thermal_slowdown", 0x80: "hw_power_brake_slowdown"}
OTHER_REASONS = {0x1: "gpu_idle", 0x2: "applications_clocks_setting", 0x10: "sync_boost",
                 0x100: "display_clock_setting"}


def decode_reasons(mask: int) -> list[str]:
    return [name for bit, name in {**LIMITING_REASONS, **OTHER_REASONS}.items() if mask & bit]


def summarise_throttle(ticks: list[Tick], n_devices: int) -> tuple[ThrottleSummary | None, list[str]]:
    ticks = sorted(ticks, key=lambda tk: tk.t_s)
    if not ticks or all(s.throttle_reasons is None for tk in ticks for s in tk.samples):
        return None, []
    gaps = [b.t_s - a.t_s for a, b in zip(ticks, ticks[1:])]
    last_gap = statistics.median(gaps) if gaps else 0.0
    limiting: dict[str, float] = {}
    other: dict[str, float] = {}
    for pos in range(n_devices):
        per_gpu: dict[str, float] = {}
        for i, tk in enumerate(ticks):
            mask = tk.samples[pos].throttle_reasons
            if not mask:
                continue
            dt = gaps[i] if i < len(gaps) else last_gap
            for name in decode_reasons(mask):
                per_gpu[name] = per_gpu.get(name, 0.0) + dt
        for name, seconds in per_gpu.items():
            target = limiting if name in LIMITING_REASONS.values() else other
            target[name] = max(target.get(name, 0.0), seconds)
    warnings = [f"GPU throttling during the window: {name} for ~{sec:.1f} s" for name, sec in sorted(limiting.items())]
    return ThrottleSummary(occurred=bool(limiting), reasons_s=limiting, other_events_s=other), warnings
