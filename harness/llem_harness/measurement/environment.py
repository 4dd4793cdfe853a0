"""GPU environment of a run: static facts per GPU, foreign processes, and a one-line summary.

Why record it: J/token depends on driver, power limit, clocks and persistence mode
(docs/methodology.md, "Environment, temperature and cool-down"); a foreign process on an assigned GPU adds its energy to ours.
"""
from __future__ import annotations

from llenergymeasure.domain import GpuInfo

from .devices import GpuDevice


def read_environment(devices: list[GpuDevice]) -> tuple[list[GpuInfo], list[dict], list[str]]:
    """(GpuInfo per GPU, foreign processes, warnings)."""
    gpus = [d.info() for d in devices]
    foreign: list[dict] = []
    for d in devices:
        foreign.extend(d.processes())
    warnings: list[str] = []
    for g in gpus:
        if g.persistence_mode is False:
            warnings.append(f"GPU {g.index} persistence mode is off (driver state may reload between runs)")
        if g.mig_mode:
            warnings.append(f"GPU {g.index} is in MIG mode: the energy counter covers the whole GPU")
    if foreign:
        pids = ", ".join(f"pid {p.get('pid')} on GPU {p.get('gpu_index')}" for p in foreign)
        warnings.append(f"foreign processes on the assigned GPUs: {pids}")
    return gpus, foreign, warnings


def environment_summary(gpus: list[GpuInfo], unavailable_reason: str | None = None) -> str:
    """One line for the CLI, e.g. `GPU0 NVIDIA H100 80GB HBM3 | driver 550.54 | limit 700 W | 31 °C`."""
    if not gpus:
        return f"no GPU measured ({unavailable_reason or 'none assigned'})"

    def one(g: GpuInfo) -> str:
        parts = [f"GPU{g.index} {g.name or '?'}", f"driver {g.driver_version or '?'}"]
        parts.append(f"limit {g.power_limit_w:.0f} W" if g.power_limit_w is not None else "limit ? W")
        parts.append(f"{g.temperature_c:.0f} °C" if g.temperature_c is not None else "? °C")
        return " | ".join(parts)

    return "; ".join(one(g) for g in gpus)
