"""The device layer: every source of energy readings behind one interface, apart from measurement policy.

Why a layer: windows, idle power, cross-checks and phase energy (the policy, in `measurement/`)
must not care which hardware gave a reading, and must be testable without it. Every device is an
`EnergyMeter` — a cumulative energy counter read as an `EnergyReading` (millijoules, or None with
the reason) and named by `meter_id`. GPUs (`GpuDevice`) add samples, static information and
process lists. Implementations, each in its own module and imported only when chosen:
- `nvml.py`: real NVIDIA GPUs (pynvml imported lazily);
- `replay.py`: a recorded or synthetic NVML trace played back in (scaled) real time, so the
  sampler thread runs for real in tests and CI (a fake for hardware we lack, labelled as such);
- `rapl.py`: CPU package and DRAM zones of /sys/class/powercap (wraps added on every read).
A layer that cannot be used here raises a subclass of `DeviceUnavailable` whose message is the
reason published in results. Which layer measures a run is `choice.py`; which GPUs of it, by
UUID, is `selection.py`. This module imports none of them, so no import runs in a circle.

All times a backend hands out come from `backend.clock()` ("device seconds"): `time.monotonic()`
for NVML, trace time for replay. Waits go through `backend.wait(event, seconds)` so a replay at
speed 10 makes a 100 ms sampler period take 10 ms of wall time while every statistic stays in
device seconds.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol

from llenergymeasure.domain import GpuInfo

# Quantities a sample carries, in the order the timeseries writes them (name -> unit suffix kept in name).
SAMPLE_QUANTITIES = ("power_instant_w", "power_avg_w", "energy_mj", "temperature_c", "sm_clock_mhz",
                     "mem_clock_mhz", "memory_used_mb", "utilization_pct", "throttle_reasons")


@dataclass
class GpuSample:
    """One reading of one GPU. Any quantity the device could not give is None (never 0)."""

    t_s: float
    power_instant_w: float | None = None
    power_avg_w: float | None = None
    energy_mj: int | None = None
    temperature_c: float | None = None
    sm_clock_mhz: float | None = None
    mem_clock_mhz: float | None = None
    memory_used_mb: float | None = None
    utilization_pct: float | None = None
    throttle_reasons: int | None = None


@dataclass
class EnergyReading:
    """A read of a cumulative energy counter: millijoules, or None with the reason."""

    energy_mj: float | None
    unavailable_reason: str | None = None


class DeviceUnavailable(RuntimeError):
    """A device layer that cannot be used on this machine; the message is the reason results publish."""


class EnergyMeter(Protocol):
    """Anything whose energy a window measures: a GPU, a RAPL zone."""

    meter_id: str       # what the counter measures: a GPU's UUID, a RAPL zone's label

    def read_energy(self) -> EnergyReading: ...


class GpuDevice(EnergyMeter, Protocol):
    index: int          # NVML index (not a CUDA index)
    uuid: str           # also its meter_id

    def info(self) -> GpuInfo: ...
    def sample(self) -> GpuSample: ...
    def processes(self) -> list[dict]: ...


class RealTimeClock:
    """Device seconds that are wall seconds (`time.monotonic()`), waits in real time: real NVML, and
    CPU-only runs whose sampler thread still polls RAPL. A replay keeps its own (trace time, speed)."""

    def clock(self) -> float:
        return time.monotonic()

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(max(0.0, seconds))


class DeviceBackend(Protocol):
    source: str          # "nvml" | "replay"
    description: str     # one line: what this backend is (replay: trace path + provenance)

    def devices(self) -> list[GpuDevice]: ...
    def clock(self) -> float: ...
    def wait(self, event: threading.Event, seconds: float) -> bool: ...
    def close(self) -> None: ...

