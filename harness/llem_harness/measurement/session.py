"""MeasurementSession: the harness's single entry point to measurement.

Contract (the run skeleton in `llem_harness.measured_run` and its workloads rely on exactly this):
    session = MeasurementSession(cfg, gpu_ids, earlier_idle, run_dir, emit)
    gpus, foreign = session.gpu_environment()          # GpuInfo list, foreign GPU processes
    session.summary()                                  # one-line environment summary (CLI event)
    pre_load = session.measure_pre_load_idle()         # before the model loads; None if disabled
    loaded = session.measure_loaded_idle()             # model resident, before warm-up; None if disabled
    warmup = session.warmup(run_batch)                 # run_batch() -> latency_s of one batch
    session.start_window(sync)                         # sync() = device synchronise
    ... measured work ...
    window = session.stop_window(sync)                 # -> WindowMeasurement (window warnings inside)
    phase = session.phase_energy(intervals, window)    # [(start_unix_s, end_unix_s, "prefill"|"decode"|"queue")]
    session.warnings()                                 # environment/idle/warm-up warnings so far
    session.close()
Serving reads its edges inside the load's event loop: `edge = session.read_edge(deferred=True)`,
then `start_window(sync, edge)` / `stop_window(sync, edge)` on another thread, and
`mark_window_end()` at the end edge for the readings that cannot wait for the drain.

Every span is a named window (windows.py) over the device layer (devices/): the idle windows, the
run window ("run" offline, "steady_state" serving) and the phases (placed inside the run window).
What a closed run window measured is judged in run_window.py.

Warnings: `session.warnings()` holds those raised outside the window (device selection,
persistence off, MIG, foreign processes, idle power, warm-up not converged); `window.warnings` holds
the window's own (short window, < 10 samples, throttling, temperature drift, energy unavailable,
counter reset, contention). They do not overlap:
result.measurement_warnings = session.warnings() + window.warnings.
Each warning is also emitted as a `warning` progress event when raised.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

from llenergymeasure.domain import BaselineResult, EnergyResult, GpuInfo, MeasurementConfig, PhaseEnergy, WarmupResult

from .contention import ContentionMonitor
from .devices import DeviceBackend, GpuDevice, RealTimeClock
from .devices.choice import open_backend, open_cpu_meters
from .devices.rapl import cpu_energy
from .devices.selection import select_for_run
from .energy import integrate_power_j
from .environment import environment_summary, read_environment
from .idle_power import measure_idle_gated, try_reuse
from .phases import phase_energy as split_window_by_phase
from .run_window import IdleWindows, WindowMeasurement, gpu_window_energy, save_timeseries, window_quality
from .sampler import Sampler
from .stall import StallWatch
from .unmeasured_use import check_unmeasured_use
from .warmup import run_warmup
from .windows import Edge, Window, Windows

Emit = Callable[..., None]


class _HostClock(RealTimeClock):
    """Clock for CPU-only runs (no device backend): the RAPL zones still need a sampler thread for their wraps."""

    source = "none"
    description = "no GPU backend"


class MeasurementSession:
    def __init__(self, cfg: MeasurementConfig, gpu_ids: list[str] | None, earlier_idle: BaselineResult | None,
                 run_dir: Path, emit: Emit, powercap_root: Path | str | None = None):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.emit = emit
        self._earlier_idle = earlier_idle   # a pre-load idle measured earlier in the study (reused while fresh)
        self._warnings: list[str] = []
        self._idle = IdleWindows()
        self._gpus: list[GpuInfo] | None = None
        self._foreign: list[dict] = []
        self._stall: StallWatch | None = None
        self._run_window_name: str | None = None
        choice = open_backend()
        self.backend: DeviceBackend | None = choice.backend
        self.unavailable_reason = choice.unavailable_reason
        self.devices: list[GpuDevice] = []
        self._all_devices: list[GpuDevice] = []
        if self.backend is not None:
            self._all_devices = self.backend.devices()
            self.devices, notes = select_for_run(self._all_devices, gpu_ids, os.environ.get("CUDA_VISIBLE_DEVICES"),
                                                 os.environ.get("CUDA_DEVICE_ORDER"))
            for note in notes:
                self._warn(note)
            if not self.devices:
                self.unavailable_reason = "no GPU assigned to or visible in this process"
        self._cpu_zones, self._cpu_unavailable = open_cpu_meters(powercap_root)
        self._contention = ContentionMonitor(self.devices, self._clock)
        clock_source = self.backend or _HostClock()
        timeline = (Sampler(clock_source, self.devices, cfg.sampling_period_ms, self._poll)
                    if self.devices or self._cpu_zones else None)
        self._windows = Windows(clock_source.clock, [*self.devices, *self._cpu_zones], timeline)
        if self.replayed:
            self._warn(f"GPU readings are replayed from {self.backend.description}: "
                       "not a measurement of this machine")

    # -- helpers -------------------------------------------------------------------------------
    @property
    def replayed(self) -> bool:
        return self.backend is not None and self.backend.source == "replay"

    def _warn(self, message: str, into: list[str] | None = None) -> None:
        (self._warnings if into is None else into).append(message)
        self.emit("warning", message=message)

    def _clock(self) -> float:
        return self.backend.clock() if self.backend is not None else time.monotonic()

    def _poll(self) -> None:
        """Every timeline tick: the RAPL zones (so no wrap is missed) and, in the run window, contention."""
        for zone in self._cpu_zones:
            zone.read_energy()
        if self._run_window_name is not None:
            self._contention.poll()

    # -- environment ---------------------------------------------------------------------------
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
        return f"{line} [replay]" if self.replayed else line

    def warnings(self) -> list[str]:
        return list(self._warnings)

    # -- idle power ----------------------------------------------------------------------------
    def _measure_idle(self, kind: str) -> BaselineResult:
        result, warnings = measure_idle_gated(self.backend, self.devices, self.cfg.baseline.duration_s,
                                         self.cfg.sampling_period_ms, kind=kind,
                                         max_wait_s=self.cfg.baseline.temperature_max_wait_s)
        for w in warnings:
            self._warn(w)
        return result

    def measure_pre_load_idle(self) -> BaselineResult | None:
        """Idle power before the model loads (the result's `baseline`); reused from earlier in the study while fresh."""
        if not self.cfg.baseline.enabled:
            return None
        if self.backend is None or not self.devices:
            self._idle.pre_load = BaselineResult(method="unavailable", unavailable_reason=self.unavailable_reason)
            return self._idle.pre_load
        reused, _why = try_reuse(self._earlier_idle, [d.uuid for d in self.devices], self.cfg.baseline.reuse_ttl_s)
        self._idle.pre_load = reused if reused is not None else self._measure_idle("pre_load")
        return self._idle.pre_load

    def measure_loaded_idle(self) -> BaselineResult | None:
        """Idle power with the model resident and the engine idle (never reused: it depends on both).

        Also where a GPU the engine uses but llem does not measure is found (UnmeasuredGpuUse: the run
        fails before its window)."""
        if self.devices:
            self._contention.learn_own_gpu_pids(self._foreign)
            for note in check_unmeasured_use(self._all_devices, self.devices, self._contention.own_pids()):
                self._warn(note)
        if not self.cfg.baseline.enabled:
            return None
        if self.backend is None or not self.devices:
            self._idle.loaded = BaselineResult(method="unavailable", kind="loaded",
                                               unavailable_reason=self.unavailable_reason)
        else:
            self._idle.loaded = self._measure_idle("loaded")
        return self._idle.loaded

    def warmup(self, run_batch: Callable[[], float]) -> WarmupResult:
        result, warnings = run_warmup(self.cfg.warmup, run_batch, self.emit)
        for w in warnings:
            self._warn(w)
        return result

    # -- the run window ------------------------------------------------------------------------
    def read_edge(self, deferred: bool = False) -> Edge:
        """A window edge alone: every meter's counter and the clocks, nothing else.

        Serving reads its edges inside the load generator's event loop (`deferred=True`), where any
        slower work (sampler thread, files) would stall the requests in flight; the rest is done by
        `start_window`/`stop_window` given the edge (bench/serving_edge_stall.py measures the stall).
        """
        return self._windows.read_edge(deferred)

    def start_window(self, sync: Callable[[], None], edge: Edge | None = None, name: str = "run") -> None:
        self._contention.start()  # reads /proc and the process lists: before the window's first reading
        sync()
        self._run_window_name = name
        self._windows.begin_window(name, edge)
        self._stall = StallWatch()
        self._stall.start()

    def mark_window_end(self) -> None:
        """The end edge's contention readings (/proc, process lists), at the edge rather than after the drain."""
        self._contention.mark_end()

    def stop_window(self, sync: Callable[[], None], edge: Edge | None = None) -> WindowMeasurement:
        """Close the run window at `edge` (read earlier by `read_edge`) or now."""
        if edge is None:
            sync()
        window = self._windows.end_window(self._run_window_name, edge)
        self._run_window_name = None
        ticks = self._windows.ticks(window)
        warnings: list[str] = []

        def warn(message: str) -> None:
            self._warn(message, warnings)

        for err in self._windows.errors(window):
            warn(f"sampler read error: {err}")
        stats = self._windows.timeline.stats(ticks) if self.devices else None
        window_s = window.duration_s
        start, end = window.readings(self._cpu_zones)
        cpu = cpu_energy(self._cpu_zones, start, end, window_s, self._cpu_unavailable)
        stall_s = self._stall_inside(window)
        if stall_s > 0:
            warn(f"the harness process did not run for {stall_s:.1f} s inside the measured window (stopped, "
                 "suspended or not scheduled): the window's throughput and energy include the stall; "
                 "flagged in the statistics")
        contention, notes = self._contention.stop()
        for note in notes:
            warn(note)
        if self.backend is None or not self.devices:
            reason = self.unavailable_reason or "no GPU"
            energy = EnergyResult(method="unavailable", unavailable_reason=reason, window_s=window_s)
            warn(f"GPU energy unavailable: {reason}")
        else:
            energy = gpu_window_energy(window, ticks, self.devices, self._gpus, self._idle, self.backend.description,
                                       self.cfg, warn)
            if getattr(self.backend, "exhausted", lambda: False)():
                warn("replay trace ended before the window did (values held at the last sample)")
        energy_read = energy.method != "unavailable" or cpu.method != "unavailable"
        throttle, thermal = window_quality(window_s, energy_read, stats, ticks, self.devices, self.cfg, warn)
        return WindowMeasurement(window=window, energy=energy, cpu_energy=cpu, contention=contention, sampler=stats,
                                 throttle=throttle, thermal=thermal,
                                 timeseries_file=save_timeseries(self.run_dir, ticks, self.devices, window, self.cfg),
                                 warnings=warnings, stall_s=stall_s, ticks=ticks)

    def _stall_inside(self, window: Window) -> float:
        if self._stall is None:
            return 0.0
        self._stall.stop()
        return self._stall.stalled_s(window.start.wall_s, window.end.wall_s)

    # -- phases --------------------------------------------------------------------------------
    def phase_energy(self, intervals: list[tuple[float, float, str]], window: WindowMeasurement) -> PhaseEnergy:
        """Split the run window's energy into prefill/decode over the union of each phase's intervals (phases.py).

        Each phase interval is a window placed inside the run window; its energy is the run
        window's power timeline integrated between its edges — an estimate from ~100 ms samples
        against intervals that can be shorter (method `timeline_integration`), scaled so that the
        phases add up to the counter's window energy, which stays the window total.
        """
        run = window.window
        if not self.devices or not window.ticks:
            return PhaseEnergy(unavailable_reason=self.unavailable_reason or "no power timeline")
        points = [(tk.t_s, sum(s.power_instant_w for s in tk.samples)) for tk in window.ticks
                  if all(s.power_instant_w is not None for s in tk.samples)]
        if len(points) < 2:
            return PhaseEnergy(unavailable_reason="fewer than 2 instant-power samples in the window")
        speed = float(getattr(self.backend, "speed", 1.0))  # replay time compression, 1 for NVML
        t0, wall0 = run.start.clock_s, run.start.wall_s

        def clock(unix_s: float) -> float:  # unix seconds -> device clock (replay runs `speed` times faster)
            return t0 + (unix_s - wall0) * speed

        def placed_energy_j(a: float, b: float) -> float | None:
            placed = self._windows.placed("phase", clock(a), clock(b))
            return integrate_power_j(points, placed.start.clock_s, placed.end.clock_s)

        return split_window_by_phase(intervals, (wall0, wall0 + run.duration_s / speed),
                            [wall0 + (t - t0) / speed for t, _ in points], placed_energy_j,
                            window.energy.gpu_energy_raw_j)

    def close(self) -> None:
        if self._stall is not None:
            self._stall.stop()
        self._windows.close()
        if self.backend is not None:
            self.backend.close()
            self.backend = None
