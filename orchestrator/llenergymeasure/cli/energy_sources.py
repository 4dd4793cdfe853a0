"""Which energy sources `llem` can read on this host, and why not (`llem config`).

The same sources the harness uses, probed the same way, so a user learns before a study whether
its energy figures will be measured or `unavailable`: the GPU's cumulative energy counter
(`nvmlDeviceGetTotalEnergyConsumption`, preferred), instant power (`NVML_FI_DEV_POWER_INSTANT`,
integrated by the sampler when the counter is unsupported), and RAPL CPU package/DRAM counters
under /sys/class/powercap. A Docker run reads RAPL through a read-only mount of that tree, so its
readability here is what the container sees too.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

POWERCAP_ROOT = Path("/sys/class/powercap")


@dataclass
class SourceStatus:
    name: str
    readable: bool
    detail: str

    def line(self) -> str:
        return f"{self.name:<26} {'yes' if self.readable else 'no'}: {self.detail}"


def _nvml_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".rstrip(": ")


def nvml_sources() -> list[SourceStatus]:
    """The energy counter and instant power of every GPU NVML sees (or why none can be read)."""
    counter, instant = "GPU energy counter (NVML)", "GPU instant power (NVML)"
    try:
        import pynvml
    except ImportError:
        reason = "nvidia-ml-py is not installed in this environment (pip install 'llenergymeasure[harness]')"
        return [SourceStatus(counter, False, reason), SourceStatus(instant, False, reason)]
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - any NVML failure means no GPU energy here
        reason = f"no NVIDIA GPU visible: nvmlInit failed ({_nvml_error(exc)})"
        return [SourceStatus(counter, False, reason), SourceStatus(instant, False, reason)]
    try:
        n = pynvml.nvmlDeviceGetCount()
        if n == 0:
            return [SourceStatus(counter, False, "NVML sees no GPU"), SourceStatus(instant, False, "NVML sees no GPU")]
        counters, instants = [], []
        for i in range(n):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            try:
                counters.append((i, f"{int(pynvml.nvmlDeviceGetTotalEnergyConsumption(handle))} mJ so far"))
            except Exception as exc:  # noqa: BLE001
                counters.append((i, None, _nvml_error(exc)))
            try:
                value = pynvml.nvmlDeviceGetFieldValues(handle, [pynvml.NVML_FI_DEV_POWER_INSTANT])[0]
                if getattr(value, "nvmlReturn", 0) != 0:
                    raise RuntimeError(f"field value status {value.nvmlReturn}")
                instants.append((i, "readable"))
            except Exception as exc:  # noqa: BLE001
                instants.append((i, None, _nvml_error(exc)))
        return [_per_gpu(counter, counters), _per_gpu(instant, instants)]
    finally:
        pynvml.nvmlShutdown()


def _per_gpu(name: str, results: list[tuple]) -> SourceStatus:
    ok = all(r[1] is not None for r in results)
    parts = [f"GPU {r[0]}: {r[1] if r[1] is not None else 'not readable (' + r[2] + ')'}" for r in results]
    return SourceStatus(name, ok, "; ".join(parts))


def rapl_source(root: Path = POWERCAP_ROOT) -> SourceStatus:
    """RAPL package/DRAM counters: readable zones, or why not (absent tree, root-only files)."""
    name = "CPU energy (RAPL)"
    if not root.is_dir():
        return SourceStatus(name, False, f"{root} does not exist (not Linux, a VM without RAPL, or not mounted)")
    zones = sorted(p for p in root.iterdir() if p.name.startswith("intel-rapl:"))
    if not zones:
        return SourceStatus(name, False, f"no intel-rapl zones under {root} (CPU or kernel without RAPL)")
    readable, errors = [], []
    for zone in zones:
        label = (zone / "name").read_text().strip() if (zone / "name").is_file() else zone.name
        try:
            int((zone / "energy_uj").read_text().strip())
            readable.append(label)
        except PermissionError:
            errors.append(f"{label}: energy_uj is readable by root only (Linux >= 5.10); "
                          "run as root or grant read access to energy_uj")
        except (OSError, ValueError) as exc:
            errors.append(f"{label}: {exc}")
    if readable and not errors:
        return SourceStatus(name, True, "zones " + ", ".join(readable))
    return SourceStatus(name, False, "; ".join(errors) + (f" (readable: {', '.join(readable)})" if readable else ""))


def energy_sources(powercap_root: Path = POWERCAP_ROOT) -> list[SourceStatus]:
    return [*nvml_sources(), rapl_source(powercap_root)]
