"""Real NVML backend (pynvml from nvidia-ml-py, imported lazily so CPU-only hosts never need it).

Power: `NVML_FI_DEV_POWER_INSTANT` for the timeline (what we integrate in the fallback) and
`NVML_FI_DEV_POWER_AVERAGE` for the averaged value; `nvmlDeviceGetPowerUsage` is used only as the
averaged value where the field API is missing, never integrated — on Ampere and newer it is a
1-second running average (docs/methodology.md, "Energy source and window").
Energy: `nvmlDeviceGetTotalEnergyConsumption` (mJ since driver load, Volta+).
"""
from __future__ import annotations

import os
import time
from typing import Any

from llenergymeasure.domain import GpuInfo

from . import DeviceUnavailable, EnergyReading, GpuSample, RealTimeClock


class NvmlUnavailable(DeviceUnavailable):
    """NVML cannot be used here; the message is the reason reported in results."""


def _err(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _field_value(fv: Any, nvml: Any) -> float | None:
    if fv.nvmlReturn != nvml.NVML_SUCCESS:
        return None
    kind = fv.valueType
    v = fv.value
    return {nvml.NVML_VALUE_TYPE_DOUBLE: v.dVal, nvml.NVML_VALUE_TYPE_UNSIGNED_INT: v.uiVal,
            nvml.NVML_VALUE_TYPE_UNSIGNED_LONG: v.ulVal, nvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: v.ullVal,
            nvml.NVML_VALUE_TYPE_SIGNED_LONG_LONG: v.sllVal}.get(kind, v.uiVal)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlDevice:
    def __init__(self, nvml: Any, index: int):
        self._nvml = nvml
        self.index = index
        self.handle = nvml.nvmlDeviceGetHandleByIndex(index)
        self.uuid = self.meter_id = _text(nvml.nvmlDeviceGetUUID(self.handle))
        self._fields_ok = hasattr(nvml, "NVML_FI_DEV_POWER_INSTANT")

    def _try(self, fn: str, *args: Any) -> Any:
        try:
            return getattr(self._nvml, fn)(self.handle, *args)
        except Exception:  # noqa: BLE001 - NVMLError_NotSupported & co: the quantity is simply absent
            return None

    def info(self) -> GpuInfo:
        nvml = self._nvml
        limit_mw = self._try("nvmlDeviceGetEnforcedPowerLimit")
        persistence = self._try("nvmlDeviceGetPersistenceMode")
        mig = self._try("nvmlDeviceGetMigMode")
        ecc = self._try("nvmlDeviceGetEccMode")
        mem = self._try("nvmlDeviceGetMemoryInfo")
        try:
            driver = _text(nvml.nvmlSystemGetDriverVersion())
        except Exception:  # noqa: BLE001
            driver = None
        try:
            cuda = nvml.nvmlSystemGetCudaDriverVersion()
            cuda_s = f"{cuda // 1000}.{(cuda % 1000) // 10}"
        except Exception:  # noqa: BLE001
            cuda_s = None
        name = self._try("nvmlDeviceGetName")
        return GpuInfo(index=self.index, uuid=self.uuid, name=_text(name) if name is not None else None,
                       driver_version=driver, cuda_driver_version=cuda_s,
                       power_limit_w=limit_mw / 1000.0 if limit_mw is not None else None,
                       persistence_mode=bool(persistence) if persistence is not None else None,
                       mig_mode=bool(mig[0]) if mig is not None else None,
                       ecc_enabled=bool(ecc[0]) if ecc is not None else None,
                       sm_clock_mhz=self._try("nvmlDeviceGetClockInfo", nvml.NVML_CLOCK_SM),
                       mem_clock_mhz=self._try("nvmlDeviceGetClockInfo", nvml.NVML_CLOCK_MEM),
                       memory_total_mb=mem.total / 2**20 if mem is not None else None,
                       temperature_c=self._try("nvmlDeviceGetTemperature", nvml.NVML_TEMPERATURE_GPU))

    def read_energy(self) -> EnergyReading:
        try:
            return EnergyReading(int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)))
        except Exception as exc:  # noqa: BLE001
            return EnergyReading(None, f"nvmlDeviceGetTotalEnergyConsumption failed ({_err(exc)})")

    def sample(self) -> GpuSample:
        nvml = self._nvml
        s = GpuSample(t_s=time.monotonic())
        if self._fields_ok:
            try:
                vals = nvml.nvmlDeviceGetFieldValues(
                    self.handle, [nvml.NVML_FI_DEV_POWER_INSTANT, nvml.NVML_FI_DEV_POWER_AVERAGE])
                inst, avg = (_field_value(v, nvml) for v in vals)
                s.power_instant_w = inst / 1000.0 if inst is not None else None
                s.power_avg_w = avg / 1000.0 if avg is not None else None
            except Exception:  # noqa: BLE001 - old driver: no field API
                self._fields_ok = False
        if s.power_avg_w is None:
            usage = self._try("nvmlDeviceGetPowerUsage")
            s.power_avg_w = usage / 1000.0 if usage is not None else None
        energy = self._try("nvmlDeviceGetTotalEnergyConsumption")
        s.energy_mj = int(energy) if energy is not None else None
        s.temperature_c = self._try("nvmlDeviceGetTemperature", nvml.NVML_TEMPERATURE_GPU)
        s.sm_clock_mhz = self._try("nvmlDeviceGetClockInfo", nvml.NVML_CLOCK_SM)
        s.mem_clock_mhz = self._try("nvmlDeviceGetClockInfo", nvml.NVML_CLOCK_MEM)
        mem = self._try("nvmlDeviceGetMemoryInfo")
        s.memory_used_mb = mem.used / 2**20 if mem is not None else None
        util = self._try("nvmlDeviceGetUtilizationRates")
        s.utilization_pct = float(util.gpu) if util is not None else None
        reasons = self._try("nvmlDeviceGetCurrentClocksEventReasons")
        if reasons is None:
            reasons = self._try("nvmlDeviceGetCurrentClocksThrottleReasons")
        s.throttle_reasons = int(reasons) if reasons is not None else None
        return s

    def processes(self) -> list[dict]:
        """Compute and graphics processes on this GPU other than ours.

        Inside a container NVML may report host PIDs (or nothing); our own PID then never matches,
        which is why the session calls this before the model creates its CUDA context.
        """
        found: dict[int, dict] = {}
        for fn, kind in (("nvmlDeviceGetComputeRunningProcesses", "compute"),
                         ("nvmlDeviceGetGraphicsRunningProcesses", "graphics")):
            for proc in self._try(fn) or []:
                if proc.pid == os.getpid() or proc.pid in found:
                    continue
                used = getattr(proc, "usedGpuMemory", None)
                found[proc.pid] = {"gpu_uuid": self.uuid, "gpu_index": self.index, "pid": int(proc.pid),
                                   "type": kind,
                                   "used_memory_mb": used / 2**20 if isinstance(used, int) and used >= 0 else None}
        return list(found.values())


class NvmlBackend(RealTimeClock):
    source = "nvml"

    def __init__(self, nvml: Any):
        self._nvml = nvml
        self._devices = [NvmlDevice(nvml, i) for i in range(nvml.nvmlDeviceGetCount())]
        try:
            driver = _text(nvml.nvmlSystemGetDriverVersion())
        except Exception:  # noqa: BLE001
            driver = "?"
        self.description = f"NVML, driver {driver}, {len(self._devices)} GPU(s)"

    @classmethod
    def open(cls) -> "NvmlBackend":
        try:
            import pynvml
        except ImportError as exc:
            raise NvmlUnavailable(f"nvidia-ml-py (pynvml) is not installed ({exc})") from exc
        try:
            pynvml.nvmlInit()
        except Exception as exc:  # noqa: BLE001
            raise NvmlUnavailable(f"no NVIDIA GPU visible: nvmlInit failed ({_err(exc)})") from exc
        try:
            return cls(pynvml)
        except Exception as exc:  # noqa: BLE001
            pynvml.nvmlShutdown()
            raise NvmlUnavailable(f"NVML device enumeration failed ({_err(exc)})") from exc

    def devices(self) -> list[NvmlDevice]:
        return list(self._devices)

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass
