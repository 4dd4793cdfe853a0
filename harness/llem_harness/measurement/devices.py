"""The GPU device interface: what measurement needs from NVML, and nothing more.

Why an interface: the energy, sampler, baseline and throttle code must be testable without a GPU.
Two backends implement it — real NVML (`nvml_real.py`, pynvml imported lazily) and a replay
backend (`replay.py`) that plays a recorded or synthetic trace back in (scaled) real time, so the
sampler thread runs for real in tests and CI.

This module is the interface only: it imports neither backend. Choosing one (replay, real NVML or
none) is `backends.open_backend`, which sits above both, so no import runs in a circle.

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
    """A read of the cumulative energy counter: millijoules, or None with the reason."""

    energy_mj: int | None
    unavailable_reason: str | None = None


class GpuDevice(Protocol):
    index: int          # NVML index (not a CUDA index)
    uuid: str

    def info(self) -> GpuInfo: ...
    def read_energy(self) -> EnergyReading: ...
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


def _looks_like_uuid(token: str) -> bool:
    return token.upper().startswith(("GPU-", "MIG-"))


def _match_uuid(token: str, devices: list[GpuDevice]) -> GpuDevice | None:
    """CUDA accepts UUID prefixes ("GPU-8932f937"); match the unique device they name."""
    hits = [d for d in devices if d.uuid.upper().startswith(token.upper())]
    return hits[0] if len(hits) == 1 else None


def select_devices(all_devices: list[GpuDevice], gpu_ids: list[str] | None,
                   cuda_visible: str | None, cuda_device_order: str | None = None
                   ) -> tuple[list[GpuDevice], list[str]]:
    """Map the GPUs this run may use to NVML devices, by UUID wherever one is given.

    `cuda_visible` (CUDA_VISIBLE_DEVICES) narrows what the process sees; `gpu_ids` (RunSpec) then
    picks among the visible GPUs: a UUID matches directly, an integer is a CUDA index, i.e. a
    position in the visible list. Integers in CUDA_VISIBLE_DEVICES itself are CUDA ordinals whose
    order equals NVML's only with CUDA_DEVICE_ORDER=PCI_BUS_ID; otherwise we say so in a note.
    Returns (devices, notes). Raises ValueError for an id that names no visible GPU.
    """
    notes: list[str] = []
    by_index = {d.index: d for d in all_devices}
    visible = list(all_devices)
    if cuda_visible is not None:
        visible = []
        if cuda_visible.strip() in ("", "-1"):
            notes.append(f"CUDA_VISIBLE_DEVICES={cuda_visible!r} hides every GPU from this process")
        for token in (t.strip() for t in cuda_visible.split(",")):
            if not token:
                continue
            if _looks_like_uuid(token):
                dev = _match_uuid(token, all_devices)
                if dev is None:
                    # CUDA stops at the first invalid entry; so do we.
                    notes.append(f"CUDA_VISIBLE_DEVICES entry {token!r} matches no NVML device; later entries ignored")
                    break
            else:
                try:
                    dev = by_index.get(int(token))
                except ValueError:
                    notes.append(f"CUDA_VISIBLE_DEVICES entry {token!r} is neither an index nor a UUID; ignored")
                    break
                if dev is None:
                    notes.append(f"CUDA_VISIBLE_DEVICES index {token} has no NVML device; later entries ignored")
                    break
                if (cuda_device_order or "").upper() != "PCI_BUS_ID" and len(all_devices) > 1:
                    notes.append(f"CUDA_VISIBLE_DEVICES index {token} mapped to NVML index {token}; exact only "
                                 "with CUDA_DEVICE_ORDER=PCI_BUS_ID (prefer UUIDs)")
            if dev not in visible:
                visible.append(dev)
    if not gpu_ids:
        return visible, notes
    chosen: list[GpuDevice] = []
    for raw in gpu_ids:
        token = str(raw).strip()
        if _looks_like_uuid(token):
            dev = _match_uuid(token, visible)
            if dev is None:
                raise ValueError(f"assigned GPU {token} is not visible to this process "
                                 f"(visible: {[d.uuid for d in visible]})")
        else:
            pos = int(token)
            if not 0 <= pos < len(visible):
                raise ValueError(f"assigned GPU index {pos} out of range: {len(visible)} GPU(s) visible")
            dev = visible[pos]
        if dev not in chosen:
            chosen.append(dev)
    return chosen, notes
