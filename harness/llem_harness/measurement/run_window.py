"""What a closed run window measured: energy, CPU energy, samples, throttling, temperature, warnings.

Why apart from the session: the session decides when edges are read (policy of the run's order);
this module only judges a window already closed — counter-first energy per GPU, the cross-check of
the counter against integrated power, the idle power subtracted, GPUs that stayed idle, the
window's length and sample count, throttling and temperature drift — and writes the timeseries.
Everything it reads comes in through its arguments: the window, its samples and the idle windows.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from llenergymeasure.domain import (TIMESERIES_FILE, BaselineResult, ContentionResult, CpuEnergy, EnergyResult,
                                    GpuInfo, MeasurementConfig, SamplerStats, ThermalSummary, ThrottleSummary)

from .cross_check import cross_check
from .devices import GpuDevice
from .energy import window_energy
from .external import external_beside
from .idle_gpus import idle_gpus
from .sampler import Tick, write_timeseries
from .throttle import summarise_throttle
from .windows import Window

MIN_SAMPLES = 10
MAX_DRIFT_C = 10.0
Warn = Callable[[str], None]


@dataclass
class WindowMeasurement:
    window: Window                          # the named run window itself (edges: clocks and counter readings)
    energy: EnergyResult
    cpu_energy: CpuEnergy
    contention: ContentionResult | None = None
    sampler: SamplerStats | None = None
    throttle: ThrottleSummary | None = None
    thermal: ThermalSummary = field(default_factory=ThermalSummary)
    timeseries_file: str | None = None
    warnings: list[str] = field(default_factory=list)
    stall_s: float = 0.0  # seconds inside the window the harness process did not run (stall.py)
    ticks: list[Tick] = field(default_factory=list)  # the timeline's samples between its edges

    @property
    def window_s(self) -> float:
        return self.window.duration_s

    @property
    def start_unix_s(self) -> float:
        return self.window.start.wall_s

    @property
    def end_unix_s(self) -> float:
        return self.window.end.wall_s


@dataclass
class IdleWindows:
    """The idle power measured before the window: loaded idle is subtracted when measured, else pre-load."""

    pre_load: BaselineResult | None = None
    loaded: BaselineResult | None = None

    def subtracted(self) -> tuple[BaselineResult | None, str | None]:
        if self.loaded is not None and self.loaded.power_mean_w is not None:
            return self.loaded, "loaded_idle"
        if self.pre_load is not None and self.pre_load.power_mean_w is not None:
            return self.pre_load, "pre_load_idle"
        return None, None


def gpu_window_energy(window: Window, ticks: list[Tick], devices: list[GpuDevice], gpus: list[GpuInfo] | None,
                      idle: IdleWindows, readings_source: str, cfg: MeasurementConfig, warn: Warn) -> EnergyResult:
    """Counter-first GPU energy of the window, cross-checked, idle-adjusted, with its idle GPUs named."""
    start, end = window.readings(devices)
    t0, t1 = window.start.clock_s, window.end.clock_s
    subtracted, kind = idle.subtracted()
    energy, notes = window_energy(devices, start, end, ticks, t0, t1, subtracted)
    energy.readings_source = readings_source
    energy.cross_check, flagged = cross_check(devices, start, end, ticks, t0, t1, {g.uuid: g.name for g in gpus or []})
    notes += flagged
    if cfg.external_energy_file:
        energy.external = external_beside(cfg.external_energy_file, energy.cross_check, window.start.wall_s,
                                          window.end.wall_s)
    if energy.gpu_energy_adjusted_j is not None and subtracted is not None:
        energy.baseline_power_w = subtracted.power_mean_w
        energy.baseline_subtracted = kind
    energy.gpu_uuids = [d.uuid for d in devices]
    energy.idle_gpu_uuids, idle_notes = idle_gpus(devices, ticks, energy, [idle.loaded, idle.pre_load])
    for note in notes + idle_notes:
        warn(note)
    return energy


def window_quality(window_s: float, energy_read: bool, stats: SamplerStats | None, ticks: list[Tick],
                   devices: list[GpuDevice], cfg: MeasurementConfig, warn: Warn) -> tuple[ThrottleSummary | None,
                                                                                         ThermalSummary]:
    """Length, sample count, throttling and temperature drift of the window, each warned about past its limit."""
    if window_s < cfg.min_window_s and energy_read:  # without energy, the window length is no concern
        warn(f"measured window {window_s:.2f} s is shorter than {cfg.min_window_s:g} s: "
             "energy of short windows is noise-dominated")
    if stats is not None and stats.n_samples < MIN_SAMPLES:
        warn(f"only {stats.n_samples} power/thermal samples in the window (< {MIN_SAMPLES})")
    throttle, notes = summarise_throttle(ticks, len(devices))
    for note in notes:
        warn(note)
    return throttle, thermal_summary(ticks, devices, warn)


def thermal_summary(ticks: list[Tick], devices: list[GpuDevice], warn: Warn) -> ThermalSummary:
    per_gpu: dict[str, list[float | None]] = {}
    for pos, dev in enumerate(devices):
        temps = [tk.samples[pos].temperature_c for tk in ticks if tk.samples[pos].temperature_c is not None]
        if not temps:
            continue
        start, end, peak = temps[0], temps[-1], max(temps)
        per_gpu[dev.uuid] = [start, end, peak]
        if max(peak - start, abs(end - start)) > MAX_DRIFT_C:
            warn(f"GPU {dev.index} temperature drifted {start:.0f} -> {end:.0f} °C (max {peak:.0f}) "
                 f"during the window (> {MAX_DRIFT_C:.0f} °C)")
    if not per_gpu:
        return ThermalSummary()
    return ThermalSummary(temperature_start_c=max(v[0] for v in per_gpu.values()),
                          temperature_end_c=max(v[1] for v in per_gpu.values()),
                          temperature_max_c=max(v[2] for v in per_gpu.values()),
                          temperature_per_gpu_c=per_gpu)


def save_timeseries(run_dir: Path, ticks: list[Tick], devices: list[GpuDevice], window: Window,
                    cfg: MeasurementConfig) -> str | None:
    """The window's raw samples to parquet when `save_timeseries` is on; the file's name, or None."""
    if not (cfg.save_timeseries and devices and ticks):
        return None
    write_timeseries(run_dir / TIMESERIES_FILE, ticks, devices, window.start.clock_s)
    return TIMESERIES_FILE
