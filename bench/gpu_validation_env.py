"""Environment of bench/gpu_validation.py: what the GPU is, how it is set, which power readings work.

Read-only NVML queries, each on its own: a query the driver or the container runtime refuses is
recorded with its error and the rest go on (never crash, never change a setting). In rehearsal the
same fields come from a trace's header and first sample, labelled as such.
"""
from __future__ import annotations


def _try(fn, *args):
    try:
        value = fn(*args)
        return (value.decode() if isinstance(value, bytes) else value), None
    except Exception as exc:  # noqa: BLE001 - NotSupported / NoPermission: record, never crash
        return None, f"{type(exc).__name__}: {exc}"


def _fn(nvml, name: str):
    """The pynvml function, or one that raises saying this pynvml lacks it (old nvidia-ml-py)."""
    def missing(*_args):
        raise AttributeError(f"pynvml has no {name}")
    return getattr(nvml, name, missing)


def _field(nvml, handle, field_id) -> dict:
    try:
        fv = nvml.nvmlDeviceGetFieldValues(handle, [field_id])[0]
    except Exception as exc:  # noqa: BLE001
        return {"readable": False, "error": f"{type(exc).__name__}: {exc}"}
    if fv.nvmlReturn != nvml.NVML_SUCCESS:
        return {"readable": False, "error": f"nvmlReturn={fv.nvmlReturn}"}
    from llem_harness.measurement.devices.nvml import _field_value

    return {"readable": True, "value_w": _field_value(fv, nvml) / 1000.0}


def environment_nvml(index: int = 0) -> dict:
    """Driver, GPU, power limits, persistence mode, clocks, and readability of the three power readings."""
    try:
        import pynvml as nvml

        nvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001
        return {"source": "nvml", "error": f"NVML unavailable: {type(exc).__name__}: {exc}"}
    try:
        env: dict = {"source": "nvml", "errors": {}}
        system = {"driver_version": "nvmlSystemGetDriverVersion", "nvml_version": "nvmlSystemGetNVMLVersion",
                  "cuda_driver_version": "nvmlSystemGetCudaDriverVersion", "gpu_count": "nvmlDeviceGetCount"}
        for key, name in system.items():
            env[key], err = _try(_fn(nvml, name))
            if err:
                env["errors"][key] = err
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        sm, mem = getattr(nvml, "NVML_CLOCK_SM", 1), getattr(nvml, "NVML_CLOCK_MEM", 2)
        queries = {
            "gpu_name": ("nvmlDeviceGetName",), "uuid": ("nvmlDeviceGetUUID",),
            "power_limit_mw": ("nvmlDeviceGetEnforcedPowerLimit",),
            "power_management_limit_mw": ("nvmlDeviceGetPowerManagementLimit",),
            "power_default_limit_mw": ("nvmlDeviceGetPowerManagementDefaultLimit",),
            "persistence_mode": ("nvmlDeviceGetPersistenceMode",),
            "mig_mode": ("nvmlDeviceGetMigMode",), "compute_mode": ("nvmlDeviceGetComputeMode",),
            "sm_clock_mhz": ("nvmlDeviceGetClockInfo", sm), "mem_clock_mhz": ("nvmlDeviceGetClockInfo", mem),
            "sm_clock_max_mhz": ("nvmlDeviceGetMaxClockInfo", sm), "mem_clock_max_mhz": ("nvmlDeviceGetMaxClockInfo", mem),
            "sm_application_clock_mhz": ("nvmlDeviceGetApplicationsClock", sm),
            "temperature_c": ("nvmlDeviceGetTemperature", getattr(nvml, "NVML_TEMPERATURE_GPU", 0)),
            "pstate": ("nvmlDeviceGetPerformanceState",),
        }
        for key, (name, *args) in queries.items():
            env[key], err = _try(_fn(nvml, name), handle, *args)
            if err:
                env["errors"][key] = err
        if isinstance(env.get("mig_mode"), (list, tuple)):
            env["mig_mode"] = env["mig_mode"][0]
        energy, err = _try(_fn(nvml, "nvmlDeviceGetTotalEnergyConsumption"), handle)
        usage, usage_err = _try(_fn(nvml, "nvmlDeviceGetPowerUsage"), handle)
        env["readings"] = {
            "energy_counter": {"readable": energy is not None, **({"value_mj": energy} if err is None else {"error": err})},
            "power_instant_field": _field(nvml, handle, getattr(nvml, "NVML_FI_DEV_POWER_INSTANT", -1)),
            "power_average_field": _field(nvml, handle, getattr(nvml, "NVML_FI_DEV_POWER_AVERAGE", -1)),
            "power_usage": {"readable": usage is not None,
                            **({"value_w": usage / 1000.0} if usage_err is None else {"error": usage_err})},
        }
        return env
    finally:
        nvml.nvmlShutdown()


def environment_trace(path: str) -> dict:
    """The same shape, from a trace: what the recorded GPU said (REHEARSAL: not this machine)."""
    from llem_harness.measurement.devices.replay import read_trace

    header, rows = read_trace(path)
    gpu = (header.get("gpus") or [{}])[0]
    first = rows[0]

    def readable(key):
        return {"readable": any(r.get(key) is not None for r in rows)}

    return {"source": f"trace {path} ({header.get('source')}) — REHEARSAL, not this machine",
            "driver_version": header.get("driver_version"), "cuda_driver_version": header.get("cuda_driver_version"),
            "gpu_name": gpu.get("name"), "uuid": gpu.get("uuid"),
            "power_limit_mw": gpu["power_limit_w"] * 1000 if gpu.get("power_limit_w") else None,
            "persistence_mode": gpu.get("persistence_mode"), "mig_mode": gpu.get("mig_mode"),
            "sm_clock_mhz": first.get("sm_clock_mhz"), "mem_clock_mhz": first.get("mem_clock_mhz"),
            "temperature_c": first.get("temperature_c"), "recorded_at": header.get("recorded_at"),
            "readings": {"energy_counter": readable("energy_mj"), "power_instant_field": readable("power_instant_w"),
                         "power_average_field": readable("power_avg_w")}, "errors": {}}
