"""Which devices measure this run: GPUs from an NVML replay trace, real NVML, or none; CPU zones from RAPL.

Why a module of its own: the interface (`devices/__init__.py`) is what every implementation
provides, so it must not import them; the choice, which imports them, lives here, above them.

`LLEM_NVML_REPLAY=/path/trace.jsonl` -> replay (optional `LLEM_NVML_REPLAY_SPEED`, default 1.0);
else real NVML when `nvmlInit()` succeeds; else None with the reason (CPU-only: every GPU energy
field is null with that reason). Both backends are imported only when chosen: pynvml is never
needed on a CPU-only host.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from . import DeviceBackend, DeviceUnavailable
from .rapl import RaplZone, open_rapl

REPLAY_ENV = "LLEM_NVML_REPLAY"
REPLAY_SPEED_ENV = "LLEM_NVML_REPLAY_SPEED"


@dataclass
class BackendChoice:
    backend: DeviceBackend | None
    unavailable_reason: str | None = None


def open_backend() -> BackendChoice:
    """Replay if LLEM_NVML_REPLAY is set, else real NVML, else None with the reason."""
    trace = os.environ.get(REPLAY_ENV)
    if trace:
        from .replay import ReplayBackend

        speed = float(os.environ.get(REPLAY_SPEED_ENV, "1.0") or 1.0)
        backend = ReplayBackend.from_file(trace, speed=speed)
        return BackendChoice(backend)
    from .nvml import NvmlBackend

    try:
        return BackendChoice(NvmlBackend.open())
    except DeviceUnavailable as exc:
        return BackendChoice(None, unavailable_reason=str(exc))


def open_cpu_meters(powercap_root: str | os.PathLike | None = None) -> tuple[list[RaplZone], str | None]:
    """The RAPL zones this process can read, or none and the reason (CPU energy is then null with it)."""
    try:
        return open_rapl(powercap_root), None
    except DeviceUnavailable as exc:
        return [], str(exc)
