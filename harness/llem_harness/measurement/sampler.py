"""Background sampler: power, temperature, clocks, memory, utilisation and throttle reasons per GPU.

Why a thread with deadline scheduling: the achieved period is what matters for integration and
throttle durations, so the sampler aims at fixed deadlines (t0 + k*period, skipping missed ones
rather than bursting) and reports what it achieved — median period, largest gap, count — instead
of the requested value. Periods under 50 ms are refused (NVML returns zeros or errors that fast;
docs/methodology.md, "Power sampling"). Edge samples taken synchronously at window start/stop (`sample_now`) are
kept in the data but excluded from the period statistics.

The sampler is the timeline the named windows (windows.py) read: a window asks for the ticks
between its edges (`between`) and never touches the list itself, so a window whose end edge was
read earlier than the sampler stopped (serving's drain) gets exactly its own samples.
"""
from __future__ import annotations

import statistics
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from llenergymeasure.domain import SamplerStats

from .devices import SAMPLE_QUANTITIES, DeviceBackend, GpuDevice, GpuSample

MIN_PERIOD_MS = 50.0


@dataclass
class Tick:
    t_s: float                 # device seconds (backend.clock())
    samples: list[GpuSample]   # one per device, in device order
    forced: bool = False       # taken synchronously at an edge, not by the thread


class Sampler:
    def __init__(self, backend: DeviceBackend, devices: list[GpuDevice], period_ms: float,
                 on_tick: Callable[[], None] | None = None):
        if period_ms < MIN_PERIOD_MS:
            raise ValueError(f"sampling period {period_ms} ms refused: NVML cannot answer faster than "
                             f"{MIN_PERIOD_MS:.0f} ms")
        self.backend = backend
        self.devices = devices
        self.period_s = period_ms / 1000.0
        self.on_tick = on_tick
        self._ticks: list[Tick] = []
        self._errors: list[tuple[float, str]] = []  # (device seconds, what failed)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _take(self, forced: bool) -> Tick:
        t = self.backend.clock()
        tick = Tick(t, [d.sample() for d in self.devices], forced)
        if self.on_tick is not None:
            self.on_tick()
        with self._lock:
            self._ticks.append(tick)
        return tick

    def sample_now(self) -> Tick:
        return self._take(forced=True)

    def _run(self) -> None:
        deadline = self.backend.clock()
        while not self._stop.is_set():
            try:
                self._take(forced=False)
            except Exception as exc:  # noqa: BLE001 - a failed read must not kill the measurement
                with self._lock:
                    if len(self._errors) < 10:
                        self._errors.append((self.backend.clock(), f"{type(exc).__name__}: {exc}"))
            deadline += self.period_s
            now = self.backend.clock()
            if deadline < now:  # fell behind: skip missed deadlines instead of bursting
                deadline = now + self.period_s - ((now - deadline) % self.period_s)
            self.backend.wait(self._stop, deadline - now)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="llem-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    @property
    def running(self) -> bool:
        """Whether the sampler thread is running (windows.py keeps it running while any window is open)."""
        return self._thread is not None

    def snapshot(self) -> list[Tick]:
        """Every tick so far, in time order."""
        with self._lock:
            return sorted(self._ticks, key=lambda tk: tk.t_s)

    def between(self, t0_s: float, t1_s: float) -> list[Tick]:
        """The ticks taken in [t0_s, t1_s] (device seconds), in time order."""
        return [tk for tk in self.snapshot() if t0_s <= tk.t_s <= t1_s]

    def errors_between(self, t0_s: float, t1_s: float) -> list[str]:
        """Read errors of the sampler thread in [t0_s, t1_s]."""
        with self._lock:
            return [msg for t, msg in self._errors if t0_s <= t <= t1_s]

    def stats(self, ticks: list[Tick] | None = None) -> SamplerStats:
        """Achieved period and quantities of `ticks` (default: every tick so far)."""
        ticks = self.snapshot() if ticks is None else ticks
        periodic = [tk.t_s for tk in ticks if not tk.forced]
        gaps_ms = [(b - a) * 1000.0 for a, b in zip(periodic, periodic[1:])]
        quantities = [q for q in SAMPLE_QUANTITIES
                      if any(getattr(s, q) is not None for tk in ticks for s in tk.samples)]
        return SamplerStats(requested_period_ms=self.period_s * 1000.0,
                            achieved_period_median_ms=statistics.median(gaps_ms) if gaps_ms else None,
                            max_gap_ms=max(gaps_ms) if gaps_ms else None,
                            n_samples=len(periodic), quantities=quantities)


def write_timeseries(path: Path, ticks: list[Tick], devices: list[GpuDevice], t0_s: float) -> None:
    """Raw samples to parquet: `t_s` relative to the window start, then `gpu{index}_{quantity}`.

    `forced` marks the synchronous edge samples. Units are in the column names; nulls are
    quantities the device did not report.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, list] = {"t_s": [tk.t_s - t0_s for tk in ticks], "forced": [tk.forced for tk in ticks]}
    for pos, dev in enumerate(devices):
        for q in SAMPLE_QUANTITIES:
            columns[f"gpu{dev.index}_{q}"] = [getattr(tk.samples[pos], q) for tk in ticks]
    table = pa.table(columns)
    meta = {f"gpu{d.index}_uuid": d.uuid for d in devices}
    table = table.replace_schema_metadata({k.encode(): v.encode() for k, v in meta.items()})
    pq.write_table(table, path)
