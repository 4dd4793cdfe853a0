"""Replay backend: plays a recorded (or synthetic) NVML trace back in real time.

Trace format (JSON lines, documented in tests/fixtures/traces/README.md):
  line 1, header: {"format": "llem-nvml-trace", "version": 1, "source": "recorded"|"synthetic",
                   "gpu_model", "driver_version", "cuda_driver_version", "recorded_at", "loop": bool,
                   "gpus": [{"index", "uuid", "name", "power_limit_w", "persistence_mode", "mig_mode",
                             "ecc_enabled", "memory_total_mb", "processes": [...]}, ...]}
  then one line per sample per GPU: {"t_s", "gpu" (NVML index), "energy_mj", "power_instant_w",
                   "power_avg_w", "temperature_c", "sm_clock_mhz", "mem_clock_mhz", "memory_used_mb",
                   "utilization_pct", "throttle_reasons"}; a missing/null quantity is unsupported;
                   optional "processes": [{"pid", "type", "used_memory_mb"}] replaces the header's list
                   from that sample on (foreign processes that come and go).

Why time-driven: the sampler thread, window edges and baseline must run on a real clock, exactly
as with NVML; a reading at device time t returns the latest trace sample at or before t (values
hold between samples, as the real counters do). `speed` > 1 compresses time for fast tests; every
time the backend hands out is trace time, so statistics stay in trace seconds. With `loop: true`
the trace repeats and the energy counter keeps rising across repetitions.
"""
from __future__ import annotations

import bisect
import json
import threading
import time
from pathlib import Path
from typing import Any

from llenergymeasure.domain import GpuInfo

from . import SAMPLE_QUANTITIES, DeviceUnavailable, EnergyReading, GpuSample

TRACE_FORMAT = "llem-nvml-trace"
_INFO_KEYS = ("name", "power_limit_w", "persistence_mode", "mig_mode", "ecc_enabled", "memory_total_mb",
              "sm_clock_mhz", "mem_clock_mhz")


class TraceError(DeviceUnavailable, ValueError):
    """A replay trace that cannot be played: the message says what is wrong with the file."""


class ReplayDevice:
    def __init__(self, backend: "ReplayBackend", static: dict[str, Any], samples: list[dict[str, Any]]):
        self._backend = backend
        self._static = static
        self.index = int(static["index"])
        self.uuid = self.meter_id = str(static["uuid"])
        if not samples:
            raise TraceError(f"trace has no samples for GPU {self.index}")
        self._samples = sorted(samples, key=lambda r: r["t_s"])
        self._times = [float(r["t_s"]) for r in self._samples]
        energies = [r.get("energy_mj") for r in self._samples if r.get("energy_mj") is not None]
        self._energy_span_mj = (energies[-1] - energies[0]) if energies else 0

    def _at(self, t: float) -> tuple[dict[str, Any], int]:
        """Sample in force at device time t, and how many times the trace has looped."""
        first, last = self._backend.t_first, self._backend.t_last
        loops = 0
        if t > last and self._backend.loop and last > first:
            loops = int((t - first) // (last - first))
            t = first + (t - first) - loops * (last - first)
        i = bisect.bisect_right(self._times, t) - 1
        return self._samples[max(i, 0)], loops

    def info(self) -> GpuInfo:
        hdr = self._backend.header
        extra = {k: self._static.get(k) for k in _INFO_KEYS}
        sample, _ = self._at(self._backend.clock())
        return GpuInfo(index=self.index, uuid=self.uuid, driver_version=hdr.get("driver_version"),
                       cuda_driver_version=hdr.get("cuda_driver_version"),
                       temperature_c=sample.get("temperature_c"), **extra)

    def read_energy(self) -> EnergyReading:
        sample, loops = self._at(self._backend.clock())
        value = sample.get("energy_mj")
        if value is None:
            return EnergyReading(None, "total-energy counter not supported on this GPU (replayed trace)")
        return EnergyReading(int(value) + loops * self._energy_span_mj)

    def sample(self) -> GpuSample:
        t = self._backend.clock()
        row, loops = self._at(t)
        values = {q: row.get(q) for q in SAMPLE_QUANTITIES}
        if values["energy_mj"] is not None:
            values["energy_mj"] = int(values["energy_mj"]) + loops * self._energy_span_mj
        return GpuSample(t_s=t, **values)

    def processes(self) -> list[dict]:
        """The header's `processes`, unless the sample in force carries its own list (foreign load over time)."""
        row, _ = self._at(self._backend.clock())
        procs = row["processes"] if "processes" in row else self._static.get("processes", [])
        return [dict(p, gpu_uuid=self.uuid, gpu_index=self.index) for p in procs]


class ReplayBackend:
    source = "replay"

    def __init__(self, header: dict[str, Any], samples: list[dict[str, Any]], speed: float = 1.0,
                 path: str | None = None):
        if header.get("format") != TRACE_FORMAT:
            raise TraceError(f"not an llem NVML trace (format={header.get('format')!r})")
        if speed <= 0:
            raise TraceError("replay speed must be > 0")
        self.header = header
        self.speed = float(speed)
        self.loop = bool(header.get("loop", False))
        self.t_first = min(float(r["t_s"]) for r in samples)
        self.t_last = max(float(r["t_s"]) for r in samples)
        self._opened = time.monotonic()
        by_gpu: dict[int, list[dict[str, Any]]] = {}
        for row in samples:
            by_gpu.setdefault(int(row["gpu"]), []).append(row)
        self._devices = [ReplayDevice(self, g, by_gpu.get(int(g["index"]), [])) for g in header["gpus"]]
        self.description = (f"{path or 'trace'} ({header.get('source', 'unknown')} trace of "
                            f"{header.get('gpu_model') or '?'}, driver {header.get('driver_version') or '?'}, "
                            f"{header.get('recorded_at') or 'undated'}; speed x{self.speed:g})")

    @classmethod
    def from_file(cls, path: str | Path, speed: float = 1.0) -> "ReplayBackend":
        header, samples = read_trace(path)
        return cls(header, samples, speed=speed, path=str(path))

    def devices(self) -> list[ReplayDevice]:
        return list(self._devices)

    def clock(self) -> float:
        """Trace time now: starts at the trace's first sample when the backend opens."""
        return self.t_first + (time.monotonic() - self._opened) * self.speed

    def exhausted(self) -> bool:
        return not self.loop and self.clock() > self.t_last

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(max(0.0, seconds) / self.speed)

    def close(self) -> None:
        pass


def read_trace(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    lines = [ln for ln in Path(path).read_text().splitlines() if ln.strip()]
    if not lines:
        raise TraceError(f"{path}: empty trace")
    header = json.loads(lines[0])
    samples = [json.loads(ln) for ln in lines[1:]]
    if not samples:
        raise TraceError(f"{path}: trace has a header but no samples")
    return header, samples


def write_trace(path: str | Path, header: dict[str, Any], samples: list[dict[str, Any]]) -> None:
    """Write a trace: header first, then samples ordered by time."""
    header = {"format": TRACE_FORMAT, "version": 1, **header}
    with open(path, "w") as fh:
        fh.write(json.dumps(header) + "\n")
        for row in sorted(samples, key=lambda r: (r["t_s"], r["gpu"])):
            fh.write(json.dumps(row, separators=(",", ":")) + "\n")
