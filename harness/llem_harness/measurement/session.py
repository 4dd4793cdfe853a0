"""MeasurementSession: the harness's single entry point to measurement.

Contract (the run skeleton in `llem_harness.measured_run` and its workloads rely on exactly this):
    session = MeasurementSession(cfg, gpu_ids, reuse_baseline, run_dir, emit)
    gpus, foreign = session.gpu_environment()          # GpuInfo list, foreign GPU processes
    session.summary()                                  # one-line environment summary (CLI event)
    baseline = session.baseline()                      # before the model loads; None if disabled
    loaded_idle = session.after_load()                 # model resident, before warm-up; None if disabled
    warmup = session.warmup(run_batch)                 # run_batch() -> latency_s of one batch
    session.start_window(sync)                         # sync() = device synchronise
    ... measured work ...
    window = session.stop_window(sync)                 # -> WindowMeasurement (window warnings inside)
    phase = session.phase_energy(intervals)            # [(start_unix_s, end_unix_s, "prefill"|"decode")]
    session.warnings()                                 # environment/baseline/warm-up warnings so far
    session.close()

Warnings: `session.warnings()` holds those raised outside the window (device selection,
persistence off, MIG, foreign processes, baseline, warm-up not converged); `window.warnings` holds
the window's own (short window, < 10 samples, throttling, temperature drift, energy unavailable,
counter reset, contention). They do not overlap:
result.measurement_warnings = session.warnings() + window.warnings.
Each warning is also emitted as a `warning` progress event when raised. Phase events are the
pipeline's job; the session emits only `warning` and warm-up `batch` events.

Devices: `backends.open_backend()` — LLEM_NVML_REPLAY trace, else real NVML, else none (every GPU
energy field null with the reason; the run still completes).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from llenergymeasure.domain import (TIMESERIES_FILE, BaselineResult, ContentionResult, CpuEnergy, EnergyResult,
                                    GpuInfo, MeasurementConfig, PhaseEnergy, SamplerStats, ThermalSummary, ThrottleSummary,
                                    WarmupResult)

from .backends import open_backend
from .baseline import measure_gated, try_reuse
from .contention import ContentionMonitor
from .cross_check import cross_check
from .devices import DeviceBackend, GpuDevice, RealTimeClock, select_devices
from .energy import integrate_power_j, window_energy
from .environment import environment_summary, read_environment
from .external import external_beside
from .idle_gpus import idle_gpus
from .rapl import RaplMeter
from .sampler import Sampler, Tick, write_timeseries
from .stall import StallWatch
from .throttle import summarise_throttle
from .unmeasured_use import check_unmeasured_use
from .warmup import run_warmup

Emit = Callable[..., None]
MIN_SAMPLES = 10
MAX_DRIFT_C = 10.0


@dataclass
class WindowMeasurement:
    window_s: float
    start_unix_s: float
    end_unix_s: float
    energy: EnergyResult
    cpu_energy: CpuEnergy
    contention: ContentionResult | None = None
    sampler: SamplerStats | None = None
    throttle: ThrottleSummary | None = None
    thermal: ThermalSummary = field(default_factory=ThermalSummary)
    timeseries_file: str | None = None
    warnings: list[str] = field(default_factory=list)
    stall_s: float = 0.0  # seconds inside the window the harness process did not run (stall.py)


@dataclass
class WindowEdge:
    """Counter readings at one window edge: per-GPU energy, the device clock, unix time."""

    energies: list
    clock_s: float
    wall_s: float
    cpu: CpuEnergy | None = None
    deferred: bool = False  # read in the load's event loop: no synchronous sample beside it


class _HostClock(RealTimeClock):
    """Clock for CPU-only runs (no device backend): the RAPL poller still needs a sampler thread."""

    source = "none"
    description = "no GPU backend"


class MeasurementSession:
    def __init__(self, cfg: MeasurementConfig, gpu_ids: list[str] | None, reuse_baseline: BaselineResult | None,
                 run_dir: Path, emit: Emit, powercap_root: Path | str | None = None):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.emit = emit
        self._reuse = reuse_baseline
        self._warnings: list[str] = []
        self._baseline: BaselineResult | None = None
        self._gpus: list[GpuInfo] | None = None
        self._foreign: list[dict] = []
        self._sampler: Sampler | None = None
        self._window_ticks: list[Tick] = []
        self._stall: StallWatch | None = None
        self._t0 = self._wall0 = self._t1 = 0.0
        self._start_energy: list = []
        choice = open_backend()
        self.backend: DeviceBackend | None = choice.backend
        self._speed = float(getattr(self.backend, "speed", 1.0))  # replay time compression, 1 for NVML
        self.unavailable_reason = choice.unavailable_reason
        self.notes = list(choice.notes)
        self.devices: list[GpuDevice] = []
        self._all_devices: list[GpuDevice] = []
        if self.backend is not None:
            self._all_devices = self.backend.devices()
            self.devices, notes = self._select(gpu_ids)
            for note in notes:
                self._warn(note)
            if not self.devices:
                self.unavailable_reason = "no GPU assigned to or visible in this process"
        self.rapl = RaplMeter(powercap_root)
        self.contention = ContentionMonitor(self.devices, self._clock)
        self._loaded_idle: BaselineResult | None = None
        if self.backend is not None and self.backend.source == "replay":
            self._warn(f"GPU readings are replayed from {self.backend.description}: "
                       "not a measurement of this machine")

    # -- helpers -------------------------------------------------------------------------------
    def _warn(self, message: str, into: list[str] | None = None) -> None:
        (self._warnings if into is None else into).append(message)
        self.emit("warning", message=message)

    def _select(self, gpu_ids: list[str] | None) -> tuple[list[GpuDevice], list[str]]:
        all_devices = self.backend.devices()
        cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
        order = os.environ.get("CUDA_DEVICE_ORDER")
        try:
            return select_devices(all_devices, gpu_ids, cvd, order)
        except ValueError:
            visible, notes = select_devices(all_devices, None, cvd, order)
            # In a container the runtime exposes exactly the assigned GPUs, renumbered from 0, while the
            # run spec may carry host indices: same count and all indices => they are the visible set.
            if gpu_ids and all(str(g).strip().isdigit() for g in gpu_ids) and len(visible) == len(gpu_ids):
                notes.append(f"assigned GPU indices {gpu_ids} are host numbering; this process sees exactly "
                             f"{len(visible)} GPU(s), measured by UUID {[d.uuid for d in visible]}")
                return visible, notes
            raise

    def _clock(self) -> float:
        return self.backend.clock() if self.backend is not None else time.monotonic()

    # -- contract ------------------------------------------------------------------------------
    def gpu_environment(self) -> tuple[list[GpuInfo], list[dict]]:
        if self._gpus is None:
            self._gpus, self._foreign, warnings = read_environment(self.devices)
            for w in warnings:
                self._warn(w)
        return self._gpus, self._foreign

    def summary(self) -> str:
        """One-line environment summary (GPU name, driver, power limit, temperature)."""
        gpus, _ = self.gpu_environment()
        line = environment_summary(gpus, self.unavailable_reason)
        return f"{line} [replay]" if self.backend is not None and self.backend.source == "replay" else line

    def warnings(self) -> list[str]:
        return list(self._warnings)

    def baseline(self) -> BaselineResult | None:
        if not self.cfg.baseline.enabled:
            return None
        if self.backend is None or not self.devices:
            self._baseline = BaselineResult(method="unavailable", unavailable_reason=self.unavailable_reason)
            return self._baseline
        uuids = [d.uuid for d in self.devices]
        reused, _why = try_reuse(self._reuse, uuids, self.cfg.baseline.reuse_ttl_s)
        if reused is not None:
            self._baseline = reused
            return reused
        result, warnings = measure_gated(self.backend, self.devices, self.cfg.baseline.duration_s,
                                         self.cfg.sampling_period_ms, kind="pre_load",
                                         max_wait_s=self.cfg.baseline.temperature_max_wait_s)
        for w in warnings:
            self._warn(w)
        self._baseline = result
        return result

    def after_load(self) -> BaselineResult | None:
        """Loaded idle: the model is resident and the engine idle (never reused: it depends on both)."""
        if self.devices:
            self.contention.learn_own_gpu_pids(self._foreign)
            for note in check_unmeasured_use(self._all_devices, self.devices, self.contention.own_pids()):
                self._warn(note)  # UnmeasuredGpuUse: the run fails before its window
        if not self.cfg.baseline.enabled:
            return None
        if self.backend is None or not self.devices:
            self._loaded_idle = BaselineResult(method="unavailable", kind="loaded",
                                               unavailable_reason=self.unavailable_reason)
            return self._loaded_idle
        result, warnings = measure_gated(self.backend, self.devices, self.cfg.baseline.duration_s,
                                         self.cfg.sampling_period_ms, kind="loaded",
                                         max_wait_s=self.cfg.baseline.temperature_max_wait_s)
        for w in warnings:
            self._warn(w)
        self._loaded_idle = result
        return result

    def _subtracted_baseline(self) -> tuple[BaselineResult | None, str | None]:
        """Loaded idle when measured (what the GPU draws with the engine resident), else pre-load idle."""
        if self._loaded_idle is not None and self._loaded_idle.power_mean_w is not None:
            return self._loaded_idle, "loaded_idle"
        if self._baseline is not None and self._baseline.power_mean_w is not None:
            return self._baseline, "pre_load_idle"
        return None, None

    def warmup(self, run_batch: Callable[[], float]) -> WarmupResult:
        result, warnings = run_warmup(self.cfg.warmup, run_batch, self.emit)
        for w in warnings:
            self._warn(w)
        return result

    def read_edge(self, end: bool = False) -> "WindowEdge":
        """A window edge alone: the energy counters and clocks (and RAPL at the end), nothing else.

        Serving reads its edges inside the load generator's event loop, where any slower work
        (sampler thread, files) would stall the requests in flight; the rest is done by
        `start_window`/`stop_window` given the edge (bench/serving_edge_stall.py measures the stall).
        """
        energies = [d.read_energy() for d in self.devices]
        edge = WindowEdge(energies, self._clock(), time.time())
        if end:
            edge.cpu = self.rapl.stop(edge.clock_s - self._t0)
        return edge

    def start_window(self, sync: Callable[[], None], edge: "WindowEdge | None" = None) -> None:
        self.contention.start()  # reads /proc and the process lists: before the window's first reading
        sync()
        if edge is None:
            edge = self.read_edge()
        self._start_energy, self._t0, self._wall0 = edge.energies, edge.clock_s, edge.wall_s
        self._stall = StallWatch()
        self._stall.start()
        if self.rapl.available:
            self.rapl.start()
        self._window_ticks = []
        if self.devices or self.rapl.available:
            poll = self._poll_rapl_and_contention
            self._sampler = Sampler(self.backend or _HostClock(), self.devices, self.cfg.sampling_period_ms, poll)
            if self.devices and not edge.deferred:
                self._sampler.sample_now()
            self._sampler.start()

    def stop_window(self, sync: Callable[[], None], edge: "WindowEdge | None" = None) -> WindowMeasurement:
        """Close the window at `edge` (read earlier by `read_edge(end=True)`) or now."""
        deferred = edge is not None
        if edge is None:
            sync()
            edge = self.read_edge(end=True)  # the end reading comes first (docs/methodology.md)
        end_energy, t1 = edge.energies, edge.clock_s
        self._t1 = t1
        window_s = t1 - self._t0
        warnings: list[str] = []
        stats = None
        if self._sampler is not None:
            if self.devices and not deferred:
                self._sampler.sample_now()
            self._sampler.stop()
            if deferred:  # samples taken after a deferred edge (during the drain) are outside the window
                with self._sampler._lock:
                    self._sampler.ticks = [tk for tk in self._sampler.ticks if tk.t_s <= t1]
            self._window_ticks = self._sampler.snapshot()
            for err in self._sampler.errors:
                self._warn(f"sampler read error: {err}", warnings)
            if self.devices:
                stats = self._sampler.stats()
        cpu = edge.cpu if edge.cpu is not None else self.rapl.stop(window_s)
        stall_s = 0.0
        if self._stall is not None:
            self._stall.stop()
            stall_s = self._stall.stalled_s(self._wall0, edge.wall_s)
        if stall_s > 0:
            self._warn(f"the harness process did not run for {stall_s:.1f} s inside the measured window (stopped, "
                       "suspended or not scheduled): the window's throughput and energy include the stall; "
                       "flagged in the statistics", warnings)
        contention, notes = self.contention.stop()
        for note in notes:
            self._warn(note, warnings)

        if self.backend is None or not self.devices:
            reason = self.unavailable_reason or "no GPU"
            energy = EnergyResult(method="unavailable", unavailable_reason=reason, window_s=window_s)
            self._warn(f"GPU energy unavailable: {reason}", warnings)
        else:
            subtracted, kind = self._subtracted_baseline()
            energy, notes = window_energy(self.devices, self._start_energy, end_energy, self._window_ticks,
                                          self._t0, t1, subtracted)
            energy.readings_source = self.backend.description
            energy.cross_check, flagged = cross_check(self.devices, self._start_energy, end_energy,
                                                      self._window_ticks, self._t0, t1,
                                                      {g.uuid: g.name for g in self._gpus or []})
            notes += flagged
            if self.cfg.external_energy_file:
                energy.external = external_beside(self.cfg.external_energy_file, energy.cross_check, self._wall0,
                                                  edge.wall_s)
            if energy.gpu_energy_adjusted_j is not None and subtracted is not None:
                energy.baseline_power_w = subtracted.power_mean_w
                energy.baseline_subtracted = kind
            for note in notes:
                self._warn(note, warnings)
            energy.gpu_uuids = [d.uuid for d in self.devices]
            energy.idle_gpu_uuids, notes = idle_gpus(self.devices, self._window_ticks, energy,
                                                     [self._loaded_idle, self._baseline])
            for note in notes:
                self._warn(note, warnings)
            if getattr(self.backend, "exhausted", lambda: False)():
                self._warn("replay trace ended before the window did (values held at the last sample)", warnings)
        energy_read = energy.method != "unavailable" or cpu.method != "unavailable"
        if window_s < self.cfg.min_window_s and energy_read:  # without energy, the window length is no concern
            self._warn(f"measured window {window_s:.2f} s is shorter than {self.cfg.min_window_s:g} s: "
                       "energy of short windows is noise-dominated", warnings)
        if stats is not None and stats.n_samples < MIN_SAMPLES:
            self._warn(f"only {stats.n_samples} power/thermal samples in the window (< {MIN_SAMPLES})", warnings)
        throttle, notes = summarise_throttle(self._window_ticks, len(self.devices))
        for note in notes:
            self._warn(note, warnings)
        thermal = self._thermal(warnings)
        ts_file = None
        if self.cfg.save_timeseries and self.devices and self._window_ticks:
            write_timeseries(self.run_dir / TIMESERIES_FILE, self._window_ticks, self.devices, self._t0)
            ts_file = TIMESERIES_FILE
        return WindowMeasurement(window_s=window_s, start_unix_s=self._wall0, end_unix_s=edge.wall_s,
                                 energy=energy, cpu_energy=cpu, contention=contention, sampler=stats,
                                 throttle=throttle, thermal=thermal,
                                 timeseries_file=ts_file, warnings=warnings, stall_s=stall_s)

    def _poll_rapl_and_contention(self) -> None:
        if self.rapl.available:
            self.rapl.poll()
        self.contention.poll()

    def _thermal(self, warnings: list[str]) -> ThermalSummary:
        per_gpu: dict[str, list[float | None]] = {}
        for pos, dev in enumerate(self.devices):
            temps = [tk.samples[pos].temperature_c for tk in self._window_ticks
                     if tk.samples[pos].temperature_c is not None]
            if not temps:
                continue
            start, end, peak = temps[0], temps[-1], max(temps)
            per_gpu[dev.uuid] = [start, end, peak]
            if max(peak - start, abs(end - start)) > MAX_DRIFT_C:
                self._warn(f"GPU {dev.index} temperature drifted {start:.0f} -> {end:.0f} °C (max {peak:.0f}) "
                           f"during the window (> {MAX_DRIFT_C:.0f} °C)", warnings)
        if not per_gpu:
            return ThermalSummary()
        return ThermalSummary(temperature_start_c=max(v[0] for v in per_gpu.values()),
                              temperature_end_c=max(v[1] for v in per_gpu.values()),
                              temperature_max_c=max(v[2] for v in per_gpu.values()),
                              temperature_per_gpu_c=per_gpu)

    def phase_energy(self, intervals: list[tuple[float, float, str]],
                     window_energy_j: float | None = None) -> PhaseEnergy:
        """Split window energy into prefill/decode over the union of each phase's intervals (phases.py).

        An estimate from ~100 ms samples against intervals that can be shorter (method
        `timeline_integration`); the window total stays the counter value.
        """
        from ..phases import phase_energy

        if not self.devices or not self._window_ticks:
            return PhaseEnergy(unavailable_reason=self.unavailable_reason or "no power timeline")
        points = [(tk.t_s, sum(s.power_instant_w for s in tk.samples)) for tk in self._window_ticks
                  if all(s.power_instant_w is not None for s in tk.samples)]
        if len(points) < 2:
            return PhaseEnergy(unavailable_reason="fewer than 2 instant-power samples in the window")
        speed, t0, wall0 = self._speed, self._t0, self._wall0

        def clock(u: float) -> float:  # unix seconds -> device clock (replay runs `speed` times faster)
            return t0 + (u - wall0) * speed

        return phase_energy(intervals, (wall0, wall0 + (self._t1 - t0) / speed),
                            [wall0 + (t - t0) / speed for t, _ in points],
                            lambda a, b: integrate_power_j(points, clock(a), clock(b)), window_energy_j)

    def close(self) -> None:
        if self._stall is not None:
            self._stall.stop()
        if self._sampler is not None:
            self._sampler.stop()
        if self.backend is not None:
            self.backend.close()
            self.backend = None


